//! Finding users: the DHT, its bounded record store, and lookups a request may cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod dht;
mod dht_store;
mod lookups;
