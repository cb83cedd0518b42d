//! The browser device: Tidings compiled to `wasm32-unknown-unknown` for a web page.
//!
//! For now it proves the path end to end: a libp2p swarm in the page (the browser's
//! WebSocket, Noise, Yamux) dials a relay's `/ws` address and opens one client-protocol
//! stream. The client core (session, store, outbox, groups) comes here next, with spawning,
//! timers, clock and storage injected. On other targets the crate is empty.

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
mod link;
#[cfg(target_arch = "wasm32")]
mod swarm;

#[cfg(target_arch = "wasm32")]
pub use browser::probe_relay;
#[cfg(target_arch = "wasm32")]
pub use link::RelayLink;
