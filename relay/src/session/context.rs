//! What the client protocol's sessions use: the handles the `/tidings/client/2` handler
//! holds, and nothing more.

use std::sync::Arc;

use tidings_protocol::{BoundedVec, UserId, limits::MAX_CARD_ADDRS};
use tokio_util::sync::CancellationToken;

use super::live::LiveDevices;

use crate::{
    config::{RegistrationConfig, RegistrationPolicy},
    disk::DiskFloor,
    federation::{Claims, Directory, Handoffs, Links},
    ingest::RateLimiter,
    invites::Invites,
    mailbox::Hub,
    metrics::Metrics,
    network::NetworkHandle,
    presence::Presence,
    sources::{PeerSources, Source},
    store::Store,
    streams::FrameTimeouts,
};

/// Who may register here, and how fast.
pub(crate) struct Registration {
    /// Open, by invite, or closed.
    pub policy: RegistrationPolicy,
    /// Limits per source, and the cap on accounts.
    pub config: RegistrationConfig,
    /// Invite codes.
    pub invites: Invites,
    /// Where each connected peer connects from.
    pub sources: Arc<PeerSources>,
    /// New accounts per network source.
    pub rate: RateLimiter<Source>,
}

/// The handles of the client protocol's handler, shared by its sessions.
pub(crate) struct ClientContext {
    pub store: Store,
    /// Mailbox feeds of subscribed sessions.
    pub hub: Arc<Hub>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The disk-space floor below which nothing that grows the store is taken.
    pub disk: Arc<DiskFloor>,
    /// Publishing home records; this relay's peer id and listen addresses.
    pub network: NetworkHandle,
    /// Addresses to announce; empty means "the addresses we listen on".
    pub announce: Vec<String>,
    pub directory: Directory,
    pub links: Links,
    pub presence: Presence,
    pub claims: Claims,
    /// Handing mailboxes of users who moved away to their new home.
    pub handoffs: Handoffs,
    pub registration: Registration,
    /// A local user's envelopes, counted once per entry they create.
    pub user_rate: RateLimiter<UserId>,
    /// How long a started frame may take (and an unregistered device stay silent).
    pub read_timeouts: FrameTimeouts,
    /// Cancelled when the relay stops.
    pub shutdown: CancellationToken,
    /// Open sessions by device (revoking a device ends them).
    pub live_devices: Arc<LiveDevices>,
    /// Link packages waiting for devices being linked.
    pub link_slots: crate::link_slots::LinkSlots,
    /// Web Push: subscriptions, the VAPID key, cancelling pushes of devices that subscribe.
    pub push: crate::push::Push,
    /// Status updates: their file and clock.
    pub status: crate::status::StatusBoard,
}

impl ClientContext {
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

    /// What the profile requests use.
    pub fn profiles(&self) -> crate::profiles::ProfileContext {
        crate::profiles::ProfileContext {
            store: self.store.clone(),
            disk: self.disk.clone(),
            directory: self.directory.clone(),
            links: self.links.clone(),
            self_peer: self.network.peer_id().to_string(),
        }
    }
}
