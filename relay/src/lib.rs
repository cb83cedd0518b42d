//! The Tidings relay: it stores and forwards end-to-end encrypted envelopes for its users.
//!
//! A relay is one libp2p `Swarm` (TCP + Noise + Yamux, and QUIC) owned by a single event-loop
//! task, a redb database written by one batching writer thread, and one task per connected
//! device stream (`/tidings/client/1`). It answers `Accepted` only after an envelope is
//! durably committed, keeps each user's mailbox until the device acks it, and never sees
//! plaintext.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tidings_relay::RelayError> {
//! use tidings_relay::{RelayConfig, RelayOptions};
//!
//! let data_dir = std::path::PathBuf::from("/tmp/relay");
//! let config = RelayConfig {
//!     listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
//!     ..RelayConfig::default()
//! };
//! tidings_relay::init(&data_dir, &config)?;
//! let relay = tidings_relay::start(RelayOptions::new(data_dir, config)).await?;
//! println!("dial {:?}", relay.tcp_dial_addr());
//! relay.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod actor;
pub mod admin;
pub mod backup;
mod blobs;
pub mod cli;
pub mod config;
mod disk;
pub(crate) mod federation;
mod federation_in;
#[cfg(feature = "test-utils")]
pub mod fuzzing;
pub(crate) mod ingest;
pub mod invites;
mod limit_metrics;
mod link_slots;
mod listen_check;
pub mod mailbox;
pub mod metrics;
pub(crate) mod network;
pub mod node_key;
mod presence;
mod profiles;
pub mod push;
mod retry;
mod router;
mod server;
pub(crate) mod session;
pub(crate) mod sources;
pub(crate) mod status;
pub mod store;
pub(crate) mod streams;
#[cfg(feature = "test-utils")]
pub mod testing;
mod web;

pub use config::{RegistrationPolicy, RelayConfig};
pub use network::{DhtStats, KAD_PROTOCOL, LookupStats};
pub use server::{RelayError, RelayOptions, RunningRelay, STORE_FILE, init, start};
