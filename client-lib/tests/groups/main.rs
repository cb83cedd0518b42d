//! Groups and presence as clients see them: fan-out, descriptor chains, presence and typing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods // tests forge with raw keys
)]

#[path = "../common/mod.rs"]
mod common;

mod group_chain;
mod groups;
mod presence;
