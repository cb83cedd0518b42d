//! Messages reaching people: online and offline, across restarts, reconnects, transports and relays; and the `tidings` CLI; and data dirs of earlier releases opening.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods // tests forge with raw keys
)]

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod federation;
mod injected_store;
mod offline_delivery;
mod online_delivery;
mod resume;
mod transports;
mod upgrade;
mod websocket;
