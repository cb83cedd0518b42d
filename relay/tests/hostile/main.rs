//! Peers that misbehave: bad input, impersonation, floods and stream limits, key claims; and the metrics that count them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod claims;
mod device_lists;
mod hostile;
mod impersonation;
mod link_slots;
mod stream_limits;
