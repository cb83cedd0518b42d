//! `Subscribe`: push a device's mailbox in order, from its last ack, within a window.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, DeviceId, MailboxItem,
    client::{Delivery, RelayFrame, Response},
    limits::{MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES},
};
use tokio::sync::watch;

use super::context::ClientContext;
use crate::{
    mailbox::Feed,
    store::{Store, StoreError},
};

/// Most envelopes pushed and not yet acked.
const WINDOW: u64 = 1024;

/// Most envelope bytes in one `Deliver` frame (leaves room for framing).
const DELIVER_MAX_BYTES: usize = MAX_FRAME_BYTES - 64 * 1024;

/// Delivery state of one subscribed session.
pub(super) struct Pump {
    device: DeviceId,
    feed: Arc<Feed>,
    head: watch::Receiver<u64>,
    /// Next sequence number to push.
    next: u64,
    /// Highest sequence number the device acked.
    acked: u64,
    /// Sends `CaughtUp` once everything up to this was pushed.
    catch_up: Option<u64>,
}

impl Pump {
    pub async fn start(cx: &ClientContext, me: Address) -> Result<(Pump, Response), StoreError> {
        // Subscribe before reading the cursor: whatever commits after this is in the feed,
        // whatever committed before is in the store.
        let feed = cx.hub.subscribe(me.device);
        let cursor = cx.store.cursor(me.device).await?;
        let one_time_keys = cx.store.one_time_key_count(me.device).await?;
        feed.observe_head(cursor.head);
        let pump = Pump {
            device: me.device,
            head: feed.watch_head(),
            feed,
            next: cursor.acked + 1,
            acked: cursor.acked,
            catch_up: Some(cursor.head),
        };
        let response = Response::Subscribed {
            acked: cursor.acked,
            head: cursor.head,
            one_time_keys,
            heartbeat_ms: (cx.presence.timing().heartbeat_timeout / 3).as_millis() as u64,
        };
        Ok((pump, response))
    }

    /// Records an ack; returns the sequence number to delete up to, if it moved forward, and
    /// how many entries that newly covers.
    pub fn on_ack(&mut self, up_to: u64) -> Option<(u64, u64)> {
        let up_to = up_to.min(self.next - 1);
        (up_to > self.acked).then(|| {
            let newly = up_to - self.acked;
            self.acked = up_to;
            (up_to, newly)
        })
    }

    /// Waits until there is something to push and room in the window. Cancel-safe: state
    /// changes only when a frame is returned.
    pub async fn next_frame(&mut self, store: &Store) -> Result<RelayFrame, StoreError> {
        loop {
            if let Some(target) = self.catch_up
                && self.next > target
            {
                self.catch_up = None;
                return Ok(RelayFrame::CaughtUp {
                    head: self.next - 1,
                });
            }
            let head = *self.head.borrow_and_update();
            let in_flight = self.next - 1 - self.acked;
            if in_flight >= WINDOW {
                // Only an ack (handled by the session) opens the window again.
                return std::future::pending().await;
            }
            if self.next <= head {
                let room = (WINDOW - in_flight).min(MAX_BATCH_ENVELOPES as u64) as usize;
                let mut items = self.feed.recent_from(self.next, room, DELIVER_MAX_BYTES);
                if items.is_empty() {
                    items = store
                        .mailbox_range(self.device, self.next, room, DELIVER_MAX_BYTES)
                        .await?;
                }
                let Some((last, _)) = items.last() else {
                    // Deleted meanwhile by another session of this user acking them.
                    self.next = head + 1;
                    self.acked = self.acked.max(head);
                    continue;
                };
                self.next = last + 1;
                tracing::trace!(device = %self.device, first = items[0].0, last, "pushing");
                let items = items
                    .into_iter()
                    .filter_map(
                        |(seq, bytes)| match MailboxItem::from_stored(bytes.to_vec()) {
                            Ok(item) => Some(Delivery { seq, item }),
                            Err(error) => {
                                // Skipped, and deleted with the next ack: it can never be read.
                                tracing::error!(seq, %error, "unreadable mailbox entry");
                                None
                            }
                        },
                    )
                    .collect();
                return Ok(RelayFrame::Deliver {
                    items: BoundedVec::new(items).unwrap_or_default(),
                });
            }
            if self.head.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}
