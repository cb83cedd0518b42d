//! Relays working together: groups fanned out across relays, presence, and a graceful shutdown mid-burst.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod groups;
mod presence;
mod shutdown;
