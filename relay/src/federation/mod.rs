//! Relay to relay: finding users' homes, forwarding the outbox, serving other relays,
//! and handing moved users over (`/tidings/federation/1`).

mod awaited;
mod batch;
mod claims;
mod context;
mod directory;
mod forward_in;
mod forwarder;
mod handoff;
mod home_cache;
mod link;
mod link_stream;
mod remote;
mod senders;
mod serve;

pub(crate) use awaited::AwaitedGroups;
pub(crate) use claims::Claims;
pub(crate) use context::FederationContext;
pub(crate) use directory::{Directory, Home, HomeCheck, LookupBudget};
pub(crate) use forwarder::Forwarder;
pub(crate) use handoff::Handoffs;
pub(crate) use link::{LinkError, Links};
pub(crate) use remote::Remote;
pub(crate) use senders::SenderCheck;
pub(crate) use serve::FederationHandler;
