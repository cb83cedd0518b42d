//! The outbox entries bound for one relay, split into lanes by sender: each lane has at
//! most one batch in flight, so one sender's envelopes keep their order while several
//! senders' batches travel (and are committed by the other relay) at once.

use std::{collections::BTreeSet, time::Duration};

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

/// One lane: entries oldest first, and since when a batch of them is out (if one is).
#[derive(Default)]
pub(super) struct Lane {
    pub queue: BTreeSet<u64>,
    out_since: Option<Instant>,
}

/// Outbox entries bound for one relay.
pub(super) struct RelayQueue {
    pub remote: Remote,
    pub lanes: [Lane; LANES],
    /// Outages in a row, for the backoff.
    pub failures: u32,
    pub not_before: Instant,
    /// When the newest outage was first seen.
    failed_at: Option<Instant>,
    /// Recipients of a failed batch wait out the pause before they are looked up again.
    pub parked: bool,
}

impl RelayQueue {
    pub fn new(remote: Remote) -> Self {
        Self {
            remote,
            lanes: Default::default(),
            failures: 0,
            not_before: Instant::now(),
            failed_at: None,
            parked: false,
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
            .filter(move |(_, lane)| open && lane.out_since.is_none() && !lane.queue.is_empty())
            .map(|(index, lane)| (index, &lane.queue))
    }

    /// Every entry queued, in all lanes.
    pub fn queued(&self) -> impl Iterator<Item = u64> + '_ {
        self.lanes
            .iter()
            .flat_map(|lane| lane.queue.iter().copied())
    }

    /// A batch of `lane` goes out.
    pub fn sent(&mut self, lane: usize, now: Instant) {
        if let Some(lane) = self.lanes.get_mut(lane) {
            lane.out_since = Some(now);
        }
    }

    /// `lane`'s batch was answered; `retry` when the other relay asked to be left alone for
    /// a while (a transient refusal), which counts as a failure.
    pub fn answered(
        &mut self,
        lane: usize,
        retry: bool,
        now: Instant,
        backoff: impl Fn(u32) -> Duration,
    ) {
        if retry {
            self.failed(lane, now, backoff);
        } else {
            self.free(lane);
            self.failures = 0;
        }
    }

    /// `lane`'s batch failed: the relay backs off. Batches that were out together fail
    /// together when the link goes: one outage, so only a batch sent after the newest
    /// outage began makes the pause longer. Returns the outages in a row.
    pub fn failed(&mut self, lane: usize, now: Instant, backoff: impl Fn(u32) -> Duration) -> u32 {
        let since = self.free(lane);
        let same_outage =
            matches!((since, self.failed_at), (Some(sent), Some(failed)) if sent <= failed);
        if !same_outage {
            self.failures += 1;
            self.failed_at = Some(now);
            self.not_before = now + backoff(self.failures);
        }
        self.failures
    }

    /// The relay connected again: its pause ends now. The outage count stays, so a relay
    /// that keeps connecting and failing still backs off longer each time it fails. Returns
    /// whether anything was paused or parked.
    pub fn link_up(&mut self, now: Instant) -> bool {
        let waited = self.not_before > now || self.parked;
        self.not_before = self.not_before.min(now);
        self.parked = false;
        waited
    }

    fn free(&mut self, lane: usize) -> Option<Instant> {
        self.lanes
            .get_mut(lane)
            .and_then(|lane| lane.out_since.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(failures: u32) -> Duration {
        Duration::from_secs(u64::from(failures))
    }

    fn queue() -> RelayQueue {
        RelayQueue::new(Remote {
            peer: libp2p::PeerId::random(),
            addrs: Vec::new(),
        })
    }

    #[test]
    fn batches_that_were_out_together_count_as_one_outage() {
        let mut relay = queue();
        let t0 = Instant::now();
        for lane in 0..LANES {
            relay.sent(lane, t0);
        }
        let later = t0 + Duration::from_millis(10);
        for lane in 0..LANES {
            assert_eq!(relay.failed(lane, later, step), 1);
        }
        assert_eq!(relay.not_before, later + step(1));
    }

    #[test]
    fn a_batch_sent_after_an_outage_began_that_fails_again_lengthens_the_pause() {
        let mut relay = queue();
        let t0 = Instant::now();
        relay.sent(0, t0);
        relay.failed(0, t0, step);
        let t1 = t0 + Duration::from_secs(2);
        relay.sent(0, t1);
        assert_eq!(relay.failed(0, t1, step), 2);
        assert_eq!(relay.not_before, t1 + step(2));
        relay.sent(0, t1);
        relay.answered(0, false, t1, step);
        assert_eq!(relay.failures, 0);
        assert_eq!(relay.ready_lanes(t1).count(), 0, "nothing queued");
    }

    #[test]
    fn a_relay_that_connects_again_is_ready_at_once_and_keeps_its_outage_count() {
        let mut relay = queue();
        let sender = tidings_protocol::UserId::from_bytes([7; 32]);
        relay.insert(1, &sender);
        let t0 = Instant::now();
        let lane = lane_of(&sender);
        relay.sent(lane, t0);
        relay.failed(lane, t0, step);
        relay.sent(lane, t0 + step(1));
        assert_eq!(relay.failed(lane, t0 + step(1), step), 2);
        let soon = t0 + step(1) + Duration::from_millis(1);
        assert_eq!(relay.ready_lanes(soon).count(), 0, "backed off");
        assert!(relay.link_up(soon));
        assert_eq!(relay.ready_lanes(soon).count(), 1);
        assert_eq!(relay.failures, 2);
        assert!(!relay.link_up(soon + step(5)), "nothing waited any more");
        assert_eq!(relay.not_before, soon, "a notice never starts a pause");
    }
}
