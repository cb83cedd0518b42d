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

// Layers, each using only those above it in this list: the stream and its typed calls; the
// identity and store facade; what a connection does for it (keys, home, devices, outbox,
// group chain); the session; features on a session (presence, groups).
#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod calls;
pub mod connection;
mod error;
pub mod events;
mod list_checks;
pub mod net;
pub mod runtime;
pub mod store;
#[cfg(not(target_arch = "wasm32"))]
pub mod websocket;

mod client;

mod device_lists;
mod devices;
mod flush;
mod group_keys;
mod group_sync;
mod held_back;
mod home;
mod key_upload;
mod olm_sessions;

mod session;

mod groups;
pub mod media;
mod presence;
pub mod profile;
pub mod push;
pub mod search;
pub mod status;
pub mod typing;

#[cfg(feature = "test-utils")]
pub mod fuzzing;

pub use client::{Client, KEY_FILE, relay_peer};
pub use devices::{Approved, DeviceInfo, DeviceLink, LINK_POLL_INTERVAL, LINK_WAIT};
pub use error::{ClientError, DeviceError, GroupOpError};
pub use events::Event;
pub use flush::FlushReport;
pub use home::{Moved, Registration};
pub use media::{MediaError, Progress, SentFile};
pub use push::{PushState, WakeReport};
pub use session::Session;
pub use store::{Conversation, Direction, MessageRecord, MessageStatus, ReceiptCounts};
