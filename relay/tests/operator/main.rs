//! What an operator relies on: a taken port is an error, the relay names itself, logs are
//! plain text in a pipe, a graceful shutdown mid-burst loses nothing accepted, and data dirs
//! of earlier releases open (newer ones are refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod backup;
mod backup_cli;
mod compact;
mod operator;
mod shutdown;
mod upgrade;
