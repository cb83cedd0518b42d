//! The browser device: Tidings compiled to `wasm32-unknown-unknown` for a web page.
//!
//! It runs in a Dedicated Worker: [`Device`] is an account on the client core
//! (`tidings-client`, its store redb on OPFS, its key file sealed under a passphrase) with a
//! session to the home relay over the browser's WebSocket (Noise, Yamux). `probeRelay` checks the
//! path to a relay without an account. On other targets the crate is
//! empty.

#[cfg(target_arch = "wasm32")]
mod account;
#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
mod device;
#[cfg(target_arch = "wasm32")]
mod media;
#[cfg(target_arch = "wasm32")]
mod media_view;
#[cfg(target_arch = "wasm32")]
mod social;
#[cfg(target_arch = "wasm32")]
mod social_session;
#[cfg(target_arch = "wasm32")]
mod swarm;
#[cfg(target_arch = "wasm32")]
mod unregistered;

#[cfg(target_arch = "wasm32")]
pub use account::PendingLink;
#[cfg(target_arch = "wasm32")]
pub use browser::probe_relay;
#[cfg(target_arch = "wasm32")]
pub use device::Device;
