//! Stream slots: at most so many streams served at once per peer and in total, with the
//! last quarter of the total kept for peers that hold none yet.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use libp2p::PeerId;

/// Why a stream got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The peer already holds its share.
    PeerLimit,
    /// Every slot is taken (or the rest is kept for peers that hold none).
    Full,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_peer: HashMap<PeerId, usize>,
}

/// Slots of one protocol's streams.
pub(crate) struct StreamSlots {
    total: usize,
    per_peer: usize,
    /// Beyond this many taken, only peers holding no slot get one.
    shared_part: usize,
    held: Mutex<Held>,
}

/// A taken slot, given back when dropped.
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    peer: PeerId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_peer.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.by_peer.remove(&self.peer);
            }
        }
    }
}

impl StreamSlots {
    /// `total` slots, at most `per_peer` for one peer.
    pub fn new(total: usize, per_peer: usize) -> Arc<Self> {
        let total = total.max(1);
        Arc::new(Self {
            total,
            per_peer: per_peer.clamp(1, total),
            shared_part: total - total / 4,
            held: Mutex::new(Held::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Takes a slot for a stream of `peer`, if its share and the total allow.
    pub fn try_take(self: &Arc<Self>, peer: PeerId) -> Result<StreamSlot, Refusal> {
        let mut held = self.lock();
        let mine = held.by_peer.get(&peer).copied().unwrap_or(0);
        if mine >= self.per_peer {
            return Err(Refusal::PeerLimit);
        }
        if held.total >= self.total || (mine > 0 && held.total >= self.shared_part) {
            return Err(Refusal::Full);
        }
        held.total += 1;
        *held.by_peer.entry(peer).or_insert(0) += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            peer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_gets_its_share_and_newcomers_find_the_kept_quarter() {
        let slots = StreamSlots::new(8, 4);
        let greedy: Vec<PeerId> = (0..2).map(|_| PeerId::random()).collect();
        let mut taken = Vec::new();
        for _ in 0..4 {
            taken.push(slots.try_take(greedy[0]).unwrap());
        }
        assert_eq!(slots.try_take(greedy[0]).err(), Some(Refusal::PeerLimit));
        // Six taken: beyond that, only peers holding none get one.
        taken.push(slots.try_take(greedy[1]).unwrap());
        taken.push(slots.try_take(greedy[1]).unwrap());
        assert_eq!(slots.try_take(greedy[1]).err(), Some(Refusal::Full));
        let newcomer = PeerId::random();
        taken.push(slots.try_take(newcomer).unwrap());
        taken.push(slots.try_take(PeerId::random()).unwrap());
        assert_eq!(slots.try_take(PeerId::random()).err(), Some(Refusal::Full));
        // Slots come back when dropped.
        taken.clear();
        assert_eq!(slots.lock().total, 0);
        assert!(slots.lock().by_peer.is_empty());
        assert!(slots.try_take(greedy[0]).is_ok());
    }
}
