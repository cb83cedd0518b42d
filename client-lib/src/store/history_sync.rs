//! The recent history handed to a device that joined the account: chosen and queued by a
//! device that has it (for that device only), and put before what the new device already
//! shows when it arrives.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use tidings_protocol::{
    BoundedVec, DeviceId, EnvelopeId, Kind, UserId,
    content::{HistoryItem, HistoryState, MAX_HISTORY_ITEMS, Payload},
    limits::MAX_ENVELOPE_BYTES,
    now_ms,
};

use super::{
    ClientStore, StoreError, decode, encode, history, outbox,
    tables::{
        Conversation, Direction, MESSAGES, MessageRecord, MessageStatus, OutboxContent, OutboxEntry,
    },
};
use crate::events::Event;

/// META key: how much history a device that joins the account gets (CBOR
/// [`HistorySync`]).
const META_HISTORY_SYNC: &str = "history_sync";

/// Most text bytes one history part carries (an envelope holds at most
/// `MAX_ENVELOPE_BYTES`, with room for the encryption and the other fields).
const PART_TEXT_BYTES: usize = MAX_ENVELOPE_BYTES / 2;

/// How much of the recent 1:1 history a device that joins the account gets from this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySync {
    /// Messages sent at most this long ago (milliseconds).
    pub max_age_ms: u64,
    /// At most this many messages, the newest.
    pub max_messages: u32,
}

impl Default for HistorySync {
    /// 30 days or 10,000 messages, whichever is less.
    fn default() -> Self {
        Self {
            max_age_ms: 30 * 24 * 60 * 60 * 1000,
            max_messages: 10_000,
        }
    }
}

/// Where a stored message stands, as a history hands it on (`None`: not handed on).
fn state_of(record: &MessageRecord) -> Option<HistoryState> {
    Some(match (record.direction, &record.status) {
        (Direction::Outgoing, MessageStatus::Sent) => HistoryState::Sent,
        (Direction::Outgoing, MessageStatus::Delivered) => HistoryState::Delivered,
        (_, MessageStatus::Read) => HistoryState::Read,
        (Direction::Incoming, MessageStatus::Received) => HistoryState::Unread,
        _ => return None,
    })
}

/// The record a history item becomes.
fn record_of(item: HistoryItem) -> MessageRecord {
    let (direction, status) = match (item.outgoing, item.state) {
        (true, HistoryState::Sent) => (Direction::Outgoing, MessageStatus::Sent),
        (true, HistoryState::Delivered) => (Direction::Outgoing, MessageStatus::Delivered),
        (true, _) => (Direction::Outgoing, MessageStatus::Read),
        (false, HistoryState::Unread) => (Direction::Incoming, MessageStatus::Received),
        (false, _) => (Direction::Incoming, MessageStatus::Read),
    };
    MessageRecord {
        id: item.id,
        peer: item.peer,
        group: None,
        direction,
        text: item.text,
        sent_at_ms: item.sent_at_ms,
        stored_at_ms: now_ms(),
        status,
    }
}

/// Puts a history part another device of ours sent before what this device shows; returns
/// the progress event.
pub(super) fn apply_history(
    txn: &WriteTransaction,
    messages: BoundedVec<HistoryItem, MAX_HISTORY_ITEMS>,
    done: u32,
    total: u32,
) -> Result<Event, StoreError> {
    // Parts come newest first, and so do the messages in each.
    for item in messages.into_vec() {
        history::prepend_new(txn, &record_of(item))?;
    }
    Ok(Event::HistorySynced {
        received: done.min(total),
        total,
    })
}

impl ClientStore {
    /// How much history a device that joins the account gets from this one.
    pub fn history_sync(&self) -> Result<HistorySync, StoreError> {
        match self.meta(META_HISTORY_SYNC)? {
            Some(bytes) => decode("meta", &bytes),
            None => Ok(HistorySync::default()),
        }
    }

    /// Sets how much history a device that joins the account gets from this one.
    pub fn set_history_sync(&self, sync: HistorySync) -> Result<(), StoreError> {
        self.set_meta(META_HISTORY_SYNC, &encode(&sync))
    }

    /// Queues the recent 1:1 history for `device`, a device that joined our account (`me`),
    /// newest first, in parts; returns how many messages.
    pub fn queue_history(&self, me: UserId, device: DeviceId) -> Result<usize, StoreError> {
        let sync = self.history_sync()?;
        self.write(|txn| {
            let since = now_ms().saturating_sub(sync.max_age_ms);
            let mut items: Vec<HistoryItem> = Vec::new();
            for entry in txn.open_table(MESSAGES)?.iter()? {
                let (_, bytes) = entry?;
                let record: MessageRecord = decode("messages", bytes.value())?;
                if record.group.is_some() || record.sent_at_ms < since {
                    continue;
                }
                let Some(state) = state_of(&record) else {
                    continue;
                };
                items.push(HistoryItem {
                    peer: record.peer,
                    id: record.id,
                    outgoing: record.direction == Direction::Outgoing,
                    text: record.text,
                    sent_at_ms: record.sent_at_ms,
                    state,
                });
            }
            // Newest first: the new device puts each before what it has.
            items.sort_by_key(|item| std::cmp::Reverse(item.sent_at_ms));
            items.truncate(usize::try_from(sync.max_messages).unwrap_or(usize::MAX));
            let total = u32::try_from(items.len()).unwrap_or(u32::MAX);
            let mut done: u32 = 0;
            let mut part: Vec<HistoryItem> = Vec::new();
            let mut part_bytes = 0;
            let count = items.len();
            for item in items {
                if part.len() == MAX_HISTORY_ITEMS
                    || (!part.is_empty() && part_bytes + item.text.len() > PART_TEXT_BYTES)
                {
                    done = done.saturating_add(u32::try_from(part.len()).unwrap_or(u32::MAX));
                    queue_part(txn, me, device, std::mem::take(&mut part), done, total)?;
                    part_bytes = 0;
                }
                part_bytes += item.text.len();
                part.push(item);
            }
            if !part.is_empty() {
                done = done.saturating_add(u32::try_from(part.len()).unwrap_or(u32::MAX));
                queue_part(txn, me, device, part, done, total)?;
            }
            Ok(count)
        })
    }
}

fn queue_part(
    txn: &WriteTransaction,
    me: UserId,
    device: DeviceId,
    part: Vec<HistoryItem>,
    done: u32,
    total: u32,
) -> Result<(), StoreError> {
    let messages = BoundedVec::new(part).map_err(|error| StoreError::corrupt("messages", error))?;
    let mut entry = OutboxEntry::new(
        EnvelopeId::random(),
        Conversation::Direct(me),
        Kind::Receipt,
        OutboxContent::Encrypted(Payload::History {
            messages,
            done,
            total,
        }),
    );
    entry.only = Some(device);
    outbox::enqueue(txn, &entry)?;
    Ok(())
}
