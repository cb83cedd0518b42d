//! What a client refuses: impersonation, a relay that cannot read, a tampered store, and every fuzz check over its seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods // tests forge with raw keys
)]

#[path = "../common/mod.rs"]
mod common;

mod fuzz_corpus;
mod fuzz_seeds;
mod impersonation;
mod relay_cannot_decrypt;
mod store_hardening;
