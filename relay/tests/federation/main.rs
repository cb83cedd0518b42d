//! Relays working together: finding users through the DHT (its bounded record store, the
//! lookups one request may cause), groups fanned out across relays, and presence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod dht;
mod dht_store;
mod groups;
mod links;
mod lookups;
mod order;
mod presence;
mod retry;
