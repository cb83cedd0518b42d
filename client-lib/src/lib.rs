//! The Tidings client library: a device's identity, local store and session with its home
//! relay.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tidings_client::Client;
//!
//! let alice = Client::init(std::path::Path::new("/tmp/alice"), None)?;
//! alice.register("/ip4/127.0.0.1/tcp/4717".parse()?, None).await?;
//! let bob_card = "tidings:...".parse()?; // Bob's `tidings card`
//! alice.add_contact("bob", &bob_card)?;
//! let mut session = alice.connect().await?;
//! let message = session.send_text("bob", "hi Bob").await?;
//! println!("{}", message.status.ticks()); // ✓ once the relay stored it
//! # Ok(())
//! # }
//! ```

mod client;
pub mod connection;
pub mod events;
#[cfg(feature = "test-utils")]
pub mod fuzzing;
mod groups;
mod home;
pub mod net;
mod presence;
mod session;
pub mod store;

pub use client::{Client, ClientError, KEY_FILE, Registration, relay_peer};
pub use events::Event;
pub use home::Moved;
pub use session::{FlushReport, Session};
pub use store::{Conversation, Direction, MessageRecord, MessageStatus, ReceiptCounts};
