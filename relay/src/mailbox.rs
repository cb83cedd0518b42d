//! The hub that tells connected devices about newly committed mailbox entries.
//!
//! The store writer publishes every committed envelope here. A subscribed session holds a
//! [`Feed`] for its device: a watch on the mailbox head plus a short ring of the newest entries,
//! (at most 512 and 1 MiB of them, so big envelopes cannot make it hold 512 x 64 KiB per device),
//! so an online device is usually served from memory; anything the ring no longer holds is
//! read back from the store. Nothing here is authoritative: it only saves reads. Entries of
//! devices without a subscribed session go to the push trigger, if push is on.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock, Weak},
};

use bytes::Bytes;
use tidings_protocol::DeviceId;
use tokio::sync::watch;

/// Newest entries a feed keeps in memory.
const FEED_RING: usize = 512;

/// Most bytes of entries a feed keeps in memory (besides the newest entry, always kept).
const FEED_RING_BYTES: usize = 1024 * 1024;

/// A committed mailbox entry.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Whose mailbox: the device's.
    pub device: DeviceId,
    /// Its sequence number.
    pub seq: u64,
    /// The envelope bytes.
    pub bytes: Bytes,
}

/// Live view of one device's mailbox for the sessions subscribed to it.
pub struct Feed {
    head: watch::Sender<u64>,
    recent: Mutex<Ring>,
}

/// The newest entries of a feed, contiguous, and their total size.
#[derive(Default)]
struct Ring {
    entries: VecDeque<(u64, Bytes)>,
    bytes: usize,
}

impl Feed {
    /// A receiver that wakes whenever the head moves.
    pub fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Raises the head to at least `seq` (used when a subscriber learns it from the store).
    pub fn observe_head(&self, seq: u64) {
        self.head.send_if_modified(|head| {
            let raise = seq > *head;
            if raise {
                *head = seq;
            }
            raise
        });
    }

    /// Entries from `from` on that the ring still holds, contiguous from `from`, up to
    /// `max_items` and about `max_bytes` (at least one). Empty if the ring does not start at
    /// or before `from`.
    pub fn recent_from(&self, from: u64, max_items: usize, max_bytes: usize) -> Vec<(u64, Bytes)> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let recent = &recent.entries;
        let Some((first, _)) = recent.front() else {
            return Vec::new();
        };
        if *first > from {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for (seq, entry) in recent.iter().skip((from - first) as usize) {
            if !out.is_empty() && (out.len() >= max_items || bytes + entry.len() > max_bytes) {
                break;
            }
            bytes += entry.len();
            out.push((*seq, entry.clone()));
        }
        out
    }

    fn push(&self, seq: u64, bytes: Bytes) {
        {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            // Keep the ring contiguous: a gap means entries were missed, so start over.
            if recent
                .entries
                .back()
                .is_some_and(|(last, _)| *last + 1 != seq)
            {
                recent.entries.clear();
                recent.bytes = 0;
            }
            // Bounded by count and by bytes; the newest entry is always kept.
            while recent.entries.len() >= FEED_RING
                || (!recent.entries.is_empty() && recent.bytes + bytes.len() > FEED_RING_BYTES)
            {
                match recent.entries.pop_front() {
                    Some((_, old)) => recent.bytes = recent.bytes.saturating_sub(old.len()),
                    None => break,
                }
            }
            recent.bytes += bytes.len();
            recent.entries.push_back((seq, bytes));
        }
        self.observe_head(seq);
    }
}

/// Feeds of the devices that have a subscribed session.
#[derive(Default)]
pub struct Hub {
    feeds: Mutex<HashMap<DeviceId, Weak<Feed>>>,
    /// Where entries of devices without a subscribed session go (push on).
    push: OnceLock<crate::push::Trigger>,
}

impl Hub {
    /// The feed for `device`, created if no session holds one.
    pub fn subscribe(&self, device: DeviceId) -> Arc<Feed> {
        let mut feeds = self
            .feeds
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(feed) = feeds.get(&device).and_then(Weak::upgrade) {
            return feed;
        }
        let feed = Arc::new(Feed {
            head: watch::channel(0).0,
            recent: Mutex::new(Ring::default()),
        });
        feeds.insert(device, Arc::downgrade(&feed));
        feed
    }

    /// Sends entries of devices without a subscribed session to `trigger` from now on.
    pub fn set_push(&self, trigger: crate::push::Trigger) {
        let _ = self.push.set(trigger);
    }

    /// Hands a committed entry to the device's feed if it is subscribed, else to the push
    /// trigger.
    pub fn publish(&self, publication: &Publication) {
        let feed = {
            let mut feeds = self
                .feeds
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match feeds.get(&publication.device).map(Weak::upgrade) {
                Some(Some(feed)) => Some(feed),
                Some(None) => {
                    feeds.remove(&publication.device);
                    None
                }
                None => None,
            }
        };
        match feed {
            Some(feed) => feed.push(publication.seq, publication.bytes.clone()),
            None => {
                if let Some(push) = self.push.get() {
                    push.on_entry(&publication.device, &publication.bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_serves_contiguous_entries_and_restarts_after_a_gap() {
        let hub = Hub::default();
        let device = DeviceId::from_bytes([1; 32]);
        let feed = hub.subscribe(device);
        for seq in 1..=3 {
            hub.publish(&Publication {
                device,
                seq,
                bytes: Bytes::from(vec![seq as u8]),
            });
        }
        assert_eq!(*feed.watch_head().borrow(), 3);
        let got: Vec<u64> = feed
            .recent_from(2, 10, usize::MAX)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(got, vec![2, 3]);
        hub.publish(&Publication {
            device,
            seq: 7,
            bytes: Bytes::new(),
        });
        assert!(
            feed.recent_from(3, 10, usize::MAX).is_empty(),
            "a gap must force a store read"
        );
        assert_eq!(feed.recent_from(7, 10, usize::MAX).len(), 1);
    }

    #[test]
    fn a_sender_of_big_envelopes_cannot_make_a_ring_hold_more_than_its_bytes() {
        let hub = Hub::default();
        let device = DeviceId::from_bytes([3; 32]);
        let feed = hub.subscribe(device);
        let big = Bytes::from(vec![0u8; 64 * 1024]);
        for seq in 1..=FEED_RING as u64 {
            hub.publish(&Publication {
                device,
                seq,
                bytes: big.clone(),
            });
        }
        let held: usize = feed
            .recent
            .lock()
            .unwrap()
            .entries
            .iter()
            .map(|(_, bytes)| bytes.len())
            .sum();
        assert!(held <= FEED_RING_BYTES, "the ring holds {held} bytes");
        // The newest entries are still served from memory, the oldest from the store.
        let newest = FEED_RING as u64;
        assert_eq!(feed.recent_from(newest, 1, usize::MAX).len(), 1);
        assert!(feed.recent_from(1, 1, usize::MAX).is_empty());
        // One entry over the byte bound is still held (a feed always has the newest).
        hub.publish(&Publication {
            device,
            seq: newest + 1,
            bytes: Bytes::from(vec![0u8; FEED_RING_BYTES + 1]),
        });
        assert_eq!(feed.recent_from(newest + 1, 1, usize::MAX).len(), 1);
    }

    #[test]
    fn dropped_feeds_are_forgotten() {
        let hub = Hub::default();
        let device = DeviceId::from_bytes([2; 32]);
        drop(hub.subscribe(device));
        hub.publish(&Publication {
            device,
            seq: 1,
            bytes: Bytes::new(),
        });
        assert!(hub.feeds.lock().unwrap().is_empty());
    }
}
