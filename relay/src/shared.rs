//! What every session, federation stream and background task of a relay shares.

use std::{collections::HashSet, sync::Mutex};

use libp2p::PeerId;
use tidings_protocol::{BoundedVec, UserId, limits::MAX_CARD_ADDRS};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::{RegistrationConfig, RegistrationPolicy},
    disk::DiskFloor,
    federation::{AwaitedGroups, Directory, Links, SenderCheck, claims::ClaimLimits},
    invites::Invites,
    mailbox::Hub,
    metrics::Metrics,
    network::NetworkHandle,
    presence::Presence,
    sources::PeerSources,
    store::Store,
    streams::FrameTimeouts,
};

pub(crate) struct Shared {
    pub store: Store,
    pub hub: std::sync::Arc<Hub>,
    pub invites: Invites,
    pub policy: RegistrationPolicy,
    /// Registration limits: per source, and the cap on accounts.
    pub registration: RegistrationConfig,
    /// The disk-space floor below which nothing that grows the store is taken.
    pub disk: std::sync::Arc<DiskFloor>,
    /// Where each connected peer connects from.
    pub sources: std::sync::Arc<PeerSources>,
    pub network: NetworkHandle,
    pub directory: Directory,
    pub links: Links,
    /// Addresses to announce; empty means "the addresses we listen on".
    pub announce: Vec<String>,
    /// Users whose mailbox is being handed to their new home right now.
    pub handoffs: Mutex<HashSet<UserId>>,
    /// Background work that must finish (or stop) before the relay exits.
    pub background: TaskTracker,
    /// Cancelled when the relay stops.
    pub shutdown: CancellationToken,
    /// Counters for `/metrics`.
    pub metrics: std::sync::Arc<Metrics>,
    /// Per-user and per-relay rate limits on envelopes.
    pub rates: crate::ingest::RateLimits,
    /// Who is online here and who watches whom.
    pub presence: Presence,
    /// Certificates of other relays' senders already verified.
    pub senders: SenderCheck,
    /// Groups other relays were asked to bring this relay up to date on.
    pub awaited_groups: AwaitedGroups,
    /// How long an inbound stream may stay silent, and take over one frame.
    pub read_timeouts: FrameTimeouts,
    /// How fast one-time keys go out per user, and claims per other relay.
    pub claims: ClaimLimits,
}

impl Shared {
    /// This relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.network.peer_id()
    }

    /// The addresses users put in their home records and cards.
    pub fn relay_addrs(&self) -> BoundedVec<String, MAX_CARD_ADDRS> {
        let mut addrs = if self.announce.is_empty() {
            self.network
                .listen_addrs()
                .iter()
                .map(|address| address.to_string())
                .collect()
        } else {
            self.announce.clone()
        };
        addrs.truncate(MAX_CARD_ADDRS);
        BoundedVec::new(addrs).unwrap_or_default()
    }
}
