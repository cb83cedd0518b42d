//! Accounts of several devices at the home relay: registration against the held list,
//! revocation, per-device mailboxes, group fan-out to every device, presence and typing
//! across devices, device lists over federation, and clients of the first protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod burst;
mod delivery;
mod federation;
mod handoff;
mod presence;
mod register;
mod revoke;
mod send_burst;
mod support;
mod upgrade;
