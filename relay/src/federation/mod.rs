//! Relay to relay: finding users' homes, forwarding the outbox, serving other relays,
//! and handing moved users over (`/tidings/federation/1`).

mod awaited;
mod batch;
pub(crate) mod claims;
mod directory;
mod forward_in;
pub(crate) mod forwarder;
pub(crate) mod handoff;
mod home_cache;
mod link;
mod link_stream;
mod senders;
pub(crate) mod serve;

pub(crate) use awaited::AwaitedGroups;
pub(crate) use directory::{Directory, Home, HomeCheck, LookupBudget, Remote};
pub(crate) use link::{LinkError, Links};
pub(crate) use senders::SenderCheck;
