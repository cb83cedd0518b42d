//! Accounts of several devices: every device of both sides gets each message, one's own
//! devices see what the others sent and read, group keys reach every member device, and
//! device lists are verified before use.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods // tests forge with raw keys
)]

#[path = "../common/mod.rs"]
mod common;

mod group_devices;
mod group_history;
mod lists;
mod own_devices;
mod revocation;
