//! What serving other relays uses: the handles the `/tidings/federation/1` handler holds,
//! and nothing more.

use std::sync::Arc;

use libp2p::PeerId;
use tokio_util::sync::CancellationToken;

use super::{awaited::AwaitedGroups, senders::SenderCheck};
use crate::{
    disk::DiskFloor,
    federation::{Claims, Directory},
    ingest::RateLimiter,
    metrics::Metrics,
    presence::Presence,
    store::Store,
    streams::FrameTimeouts,
};

/// The handles of the federation protocol's handler, shared by its streams.
pub(crate) struct FederationContext {
    pub store: Store,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The disk-space floor below which nothing that grows the store is taken.
    pub disk: Arc<DiskFloor>,
    /// Another relay's forwarded envelopes, counted once per recipient here.
    pub relay_rate: RateLimiter<PeerId>,
    /// KiB of group descriptors another relay hands over.
    pub descriptor_rate: RateLimiter<PeerId>,
    pub claims: Claims,
    pub directory: Directory,
    pub presence: Presence,
    /// Certificates of other relays' senders already verified.
    pub senders: SenderCheck,
    /// Groups other relays were asked to bring this relay up to date on.
    pub awaited_groups: AwaitedGroups,
    /// How long an inbound stream may stay silent, and take over one frame.
    pub read_timeouts: FrameTimeouts,
    /// Cancelled when the relay stops.
    pub shutdown: CancellationToken,
    /// This relay.
    pub self_peer: PeerId,
    /// Status updates forwarded here.
    pub status: crate::status::StatusBoard,
}
