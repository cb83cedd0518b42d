//! The outbox entries bound for one relay, split into lanes by sender: each lane has at
//! most one batch in flight, so one sender's envelopes keep their order while several
//! senders' batches travel (and are committed by the other relay) at once.

use std::collections::BTreeSet;

use tidings_protocol::UserId;
use tokio::time::Instant;

use super::remote::Remote;

/// Batches in flight to one relay at once (one per lane).
pub(super) const LANES: usize = 4;

/// The lane of `sender`'s entries. User ids are hashes of keys, so their bytes spread
/// senders evenly; a sender who picks its id only picks which lane it shares.
pub(super) fn lane_of(sender: &UserId) -> usize {
    usize::from(sender.as_bytes()[31]) % LANES
}

/// One lane: entries oldest first, and whether a batch of them is out.
#[derive(Default)]
pub(super) struct Lane {
    pub queue: BTreeSet<u64>,
    pub busy: bool,
}

/// Outbox entries bound for one relay.
pub(super) struct RelayQueue {
    pub remote: Remote,
    pub lanes: [Lane; LANES],
    pub failures: u32,
    pub not_before: Instant,
}

impl RelayQueue {
    pub fn new(remote: Remote) -> Self {
        Self {
            remote,
            lanes: Default::default(),
            failures: 0,
            not_before: Instant::now(),
        }
    }

    /// Queues entry `seq` of `sender`.
    pub fn insert(&mut self, seq: u64, sender: &UserId) {
        self.lanes[lane_of(sender)].queue.insert(seq);
    }

    /// Takes entry `seq` of `sender` off its lane.
    pub fn remove(&mut self, seq: u64, sender: &UserId) {
        self.lanes[lane_of(sender)].queue.remove(&seq);
    }

    /// Lanes with entries waiting and no batch out, if the relay is not backed off.
    pub fn ready_lanes(&self, now: Instant) -> impl Iterator<Item = (usize, &BTreeSet<u64>)> {
        let open = self.not_before <= now;
        self.lanes
            .iter()
            .enumerate()
            .filter(move |(_, lane)| open && !lane.busy && !lane.queue.is_empty())
            .map(|(index, lane)| (index, &lane.queue))
    }

    /// Every entry queued, in all lanes.
    pub fn queued(&self) -> impl Iterator<Item = u64> + '_ {
        self.lanes
            .iter()
            .flat_map(|lane| lane.queue.iter().copied())
    }
}
