//! Relay to relay, outbound: finding users' homes, links to other relays, forwarding the
//! outbox, handing moved users over, and handing out key bundles. Serving other relays'
//! streams is `federation_in`.

mod ask;
mod batch;
mod claims;
mod directory;
mod forwarder;
mod handoff;
mod home_cache;
mod link;
mod link_stream;
mod relay_queue;
mod remote;

pub(crate) use ask::{HomeAnswer, ask_home, no_home_yet};
pub(crate) use claims::{Claims, unknown_device};
pub(crate) use directory::{Directory, Home, HomeCheck, LookupBudget};
pub(crate) use forwarder::Forwarder;
pub(crate) use handoff::Handoffs;
pub(crate) use link::Links;
pub(crate) use link_stream::LinkError;
pub(crate) use remote::Remote;
