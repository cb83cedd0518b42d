//! The admin socket over relay processes: `status` numbers match what was sent, `users
//! suspend/resume/remove` do what they say for local and remote senders, and garbage on the
//! socket gets a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod process;
mod socket;
mod status;
mod users;
