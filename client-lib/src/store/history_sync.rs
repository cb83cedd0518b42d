//! The recent history (1:1 and group messages) handed to a device that joined the account:
//! chosen and queued by a device that has it (for that device only), and put before what the
//! new device already shows when it arrives.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, HashMap, hash_map::Entry},
};

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use tidings_protocol::{
    BoundedVec, DeviceId, EnvelopeId, Kind, UserId,
    content::{HistoryItem, HistoryState, MAX_HISTORY_ITEMS, Payload},
    limits::{MAX_ENVELOPE_BYTES, MAX_TEXT_BYTES},
    media::MediaKind,
    now_ms,
};

use super::{
    ClientStore, StoreError, decode, encode, history, outbox,
    tables::{
        Conversation, Direction, MESSAGE_IDS, MESSAGES, MessageRecord, MessageStatus,
        OutboxContent, OutboxEntry,
    },
};
use crate::events::Event;

/// What a message of the history says: its text, or for a media message a line naming the
/// file (a history item carries no blob or key: the joining device shows it, cannot open it).
fn history_text(record: &MessageRecord) -> String {
    let Some(media) = &record.media else {
        return record.text.clone();
    };
    let kind = match media.kind {
        MediaKind::Image => "photo",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::File => "file",
    };
    let mut text = format!("[{kind}] {}", media.name);
    if !record.text.is_empty() {
        text.push(' ');
        text.push_str(&record.text);
    }
    let mut end = text.len().min(MAX_TEXT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// META key: how much history a device that joins the account gets (CBOR
/// [`HistorySync`]).
const META_HISTORY_SYNC: &str = "history_sync";

/// Most text bytes one history part carries (an envelope holds at most
/// `MAX_ENVELOPE_BYTES`, with room for the encryption and the other fields).
const PART_TEXT_BYTES: usize = MAX_ENVELOPE_BYTES / 2;

/// How many of a conversation's newest messages are looked through for placeholders of a
/// history's messages: envelopes that arrived here but could not be opened (a group message
/// whose sender did not know this device yet, so had not shared its key with it).
const PLACEHOLDER_SCAN: usize = 256;

/// How much of the recent history (1:1 and group messages together) a device that joins the
/// account gets from this one.
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

/// Where a stored message stands, as a history hands it on (`None`: not handed on: pending,
/// failed, or an envelope that could not be opened).
///
/// A group message of ours stays `Sent` in its record (each member's ✓✓ and read are kept
/// apart, per member, and are not handed on): it goes as `Sent`, the closest state, and the
/// new device counts the receipts that reach it from then on. A group change notice is an
/// incoming record marked read, and goes as `Read`.
fn state_of(record: &MessageRecord) -> Option<HistoryState> {
    Some(match (record.direction, &record.status) {
        (Direction::Outgoing, MessageStatus::Sent) => HistoryState::Sent,
        (Direction::Outgoing, MessageStatus::Delivered) => HistoryState::Delivered,
        (_, MessageStatus::Read) => HistoryState::Read,
        (Direction::Incoming, MessageStatus::Received) => HistoryState::Unread,
        _ => return None,
    })
}

/// Bytes a media item adds besides its texts (blob reference, key, sizes, field names).
const MEDIA_ITEM_BYTES: usize = 256;

/// About how many bytes `item` takes in a part: its texts, and its media's.
fn item_bytes(item: &HistoryItem) -> usize {
    item.text.len()
        + item.media.as_ref().map_or(0, |media| {
            MEDIA_ITEM_BYTES
                + media.name.len()
                + media.mime.len()
                + media.caption.as_ref().map_or(0, String::len)
        })
}

/// The record a history item becomes.
fn record_of(item: HistoryItem) -> MessageRecord {
    let (direction, status) = match (item.outgoing, item.state) {
        // A group message's own status stops at ✓ (see `state_of`): member ticks come from
        // member receipts.
        (true, _) if item.group.is_some() => (Direction::Outgoing, MessageStatus::Sent),
        (true, HistoryState::Sent) => (Direction::Outgoing, MessageStatus::Sent),
        (true, HistoryState::Delivered) => (Direction::Outgoing, MessageStatus::Delivered),
        (true, _) => (Direction::Outgoing, MessageStatus::Read),
        (false, HistoryState::Unread) => (Direction::Incoming, MessageStatus::Received),
        (false, _) => (Direction::Incoming, MessageStatus::Read),
    };
    // A media item's text describes it for releases before media; shown here, as a live
    // media message is, with its caption.
    let text = match &item.media {
        Some(media) => media.caption.clone().unwrap_or_default(),
        None => item.text,
    };
    MessageRecord {
        id: item.id,
        peer: item.peer,
        group: item.group,
        direction,
        text,
        sent_at_ms: item.sent_at_ms,
        stored_at_ms: now_ms(),
        status,
        media: item.media,
    }
}

/// Messages of one conversation that arrived here but could not be opened, by id: where each
/// is stored and who sent it.
type Placeholders = HashMap<EnvelopeId, (Vec<u8>, UserId)>;

/// The placeholders among the newest [`PLACEHOLDER_SCAN`] messages of a conversation.
fn placeholders_in(
    txn: &WriteTxn<'_>,
    conversation: &Conversation,
) -> Result<Placeholders, StoreError> {
    let (start, end) = history::bounds(conversation);
    let messages = txn.open_table(MESSAGES)?;
    let mut found = HashMap::new();
    let newest = messages
        .range::<&[u8]>(start.as_slice()..=end.as_slice())?
        .rev()
        .take(PLACEHOLDER_SCAN);
    for entry in newest {
        let (key, bytes) = entry?;
        let record: MessageRecord =
            txn.at_rest
                .open_record::<MessageRecord>("messages", key.value(), bytes.value())?;
        if record.direction == Direction::Incoming
            && matches!(record.status, MessageStatus::Failed(_))
        {
            found.insert(record.id, (key.value().to_vec(), record.peer));
        }
    }
    Ok(found)
}

/// Puts a message of the history where its placeholder is (where it arrived), unless the
/// conversation shows it already.
fn fill_placeholder(
    txn: &WriteTxn<'_>,
    key: &[u8],
    record: &MessageRecord,
) -> Result<(), StoreError> {
    if let Some((_, held)) = history::find(txn, &record.id)?
        && held.conversation() == record.conversation()
    {
        return Ok(());
    }
    super::search::index_record(txn, key, record)?;
    super::history::put_record(txn, key, record)?;
    let mut ids = txn.open_table(MESSAGE_IDS)?;
    if ids.get(record.id.as_bytes())?.is_none() {
        ids.insert(record.id.as_bytes(), key)?;
    }
    Ok(())
}

/// Puts a history part another device of ours sent before what this device shows (a message
/// that arrived here but could not be opened, in its place instead); returns the progress
/// event.
pub(super) fn apply_history(
    txn: &WriteTxn<'_>,
    messages: BoundedVec<HistoryItem, MAX_HISTORY_ITEMS>,
    done: u32,
    total: u32,
) -> Result<Event, StoreError> {
    let mut placeholders: HashMap<Conversation, Placeholders> = HashMap::new();
    // Parts come newest first, and so do the messages in each.
    for item in messages.into_vec() {
        let record = record_of(item);
        let conversation = record.conversation();
        let held = match placeholders.entry(conversation) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(vacant) => vacant.insert(placeholders_in(txn, &conversation)?),
        };
        match held.remove(&record.id) {
            Some((key, author)) if author == record.peer => fill_placeholder(txn, &key, &record)?,
            _ => {
                history::prepend_new(txn, &record)?;
            }
        }
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

    /// Queues the recent history for `device`, a device that joined our account (`me`):
    /// 1:1 and group messages under one budget (the newest over every conversation), newest
    /// first, in parts; returns how many messages.
    pub fn queue_history(&self, me: UserId, device: DeviceId) -> Result<usize, StoreError> {
        let sync = self.history_sync()?;
        let budget = usize::try_from(sync.max_messages).unwrap_or(usize::MAX);
        self.write(|txn| {
            let since = now_ms().saturating_sub(sync.max_age_ms);
            // The newest `budget` messages over every conversation, never more held at once.
            let mut newest: BinaryHeap<Reverse<Chosen>> = BinaryHeap::new();
            for entry in txn.open_table(MESSAGES)?.iter()? {
                let (key, bytes) = entry?;
                let record: MessageRecord = txn.at_rest.open_record::<MessageRecord>(
                    "messages",
                    key.value(),
                    bytes.value(),
                )?;
                if record.sent_at_ms < since {
                    continue;
                }
                let Some(state) = state_of(&record) else {
                    continue;
                };
                newest.push(Reverse(Chosen {
                    sent_at_ms: record.sent_at_ms,
                    key: key.value().to_vec(),
                    item: HistoryItem {
                        peer: record.peer,
                        group: record.group,
                        id: record.id,
                        outgoing: record.direction == Direction::Outgoing,
                        text: history_text(&record),
                        sent_at_ms: record.sent_at_ms,
                        state,
                        media: record.media.as_ref().map(|media| {
                            // The thumbnail stays behind: parts are bounded by their text.
                            let mut media = media.clone();
                            media.thumbnail = None;
                            media
                        }),
                    },
                }));
                if newest.len() > budget {
                    newest.pop();
                }
            }
            // Newest first: the new device puts each before what it has.
            let chosen = newest.into_sorted_vec().into_iter().map(|Reverse(one)| one);
            let items = in_shown_order(chosen.collect());
            let total = u32::try_from(items.len()).unwrap_or(u32::MAX);
            let mut done: u32 = 0;
            let mut part: Vec<HistoryItem> = Vec::new();
            let mut part_bytes = 0;
            let count = items.len();
            for item in items {
                let bytes = item_bytes(&item);
                if part.len() == MAX_HISTORY_ITEMS
                    || (!part.is_empty() && part_bytes + bytes > PART_TEXT_BYTES)
                {
                    done = done.saturating_add(u32::try_from(part.len()).unwrap_or(u32::MAX));
                    queue_part(txn, me, device, std::mem::take(&mut part), done, total)?;
                    part_bytes = 0;
                }
                part_bytes += bytes;
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

/// A message chosen for a history, ordered by when it was sent, then by where it is stored
/// (the texts of one batch share their time).
struct Chosen {
    sent_at_ms: u64,
    /// Its [`MESSAGES`] key: conversation, then sequence.
    key: Vec<u8>,
    item: HistoryItem,
}

impl Ord for Chosen {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.sent_at_ms, &self.key).cmp(&(other.sent_at_ms, &other.key))
    }
}

impl PartialOrd for Chosen {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Chosen {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Chosen {}

/// The chosen messages (newest first by the senders' clocks) with each conversation's own in
/// the order this device shows them, newest first, in the places the first order gave that
/// conversation: the members' clocks differ, and the new device must show what this one does.
fn in_shown_order(chosen: Vec<Chosen>) -> Vec<HistoryItem> {
    let count = chosen.len();
    let mut conversations: HashMap<Vec<u8>, (Vec<usize>, Vec<Chosen>)> = HashMap::new();
    for (at, one) in chosen.into_iter().enumerate() {
        let conversation = one
            .key
            .get(..one.key.len().saturating_sub(8))
            .unwrap_or_default()
            .to_vec();
        let (places, ones) = conversations.entry(conversation).or_default();
        places.push(at);
        ones.push(one);
    }
    let mut slots: Vec<Option<HistoryItem>> = std::iter::repeat_with(|| None).take(count).collect();
    for (places, mut ones) in conversations.into_values() {
        ones.sort_by(|a, b| b.key.cmp(&a.key));
        for (at, one) in places.into_iter().zip(ones) {
            if let Some(slot) = slots.get_mut(at) {
                *slot = Some(one.item);
            }
        }
    }
    slots.into_iter().flatten().collect()
}

fn queue_part(
    txn: &WriteTxn<'_>,
    me: UserId,
    device: DeviceId,
    part: Vec<HistoryItem>,
    done: u32,
    total: u32,
) -> Result<(), StoreError> {
    let messages = BoundedVec::new(part).map_err(|error| StoreError::corrupt("messages", error))?;
    let mut entry = OutboxEntry::new(
        EnvelopeId::new(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use tidings_protocol::{DeviceId, EnvelopeId, GroupId, UserId, now_ms};

    use super::*;

    fn record(group: Option<GroupId>, peer: UserId, text: &str, sent_at_ms: u64) -> MessageRecord {
        MessageRecord {
            id: EnvelopeId::random(),
            peer,
            group,
            direction: Direction::Incoming,
            text: text.into(),
            sent_at_ms,
            stored_at_ms: now_ms(),
            status: MessageStatus::Received,
            media: None,
        }
    }

    fn texts(store: &ClientStore, conversation: Conversation) -> Vec<String> {
        let history = store.history(&conversation).unwrap();
        history.into_iter().map(|record| record.text).collect()
    }

    /// Members' clocks differ: a group shows its messages in the order they arrived, and the
    /// new device shows the same, however their send times sort.
    #[test]
    fn a_new_device_shows_each_conversation_as_the_old_one_does_whatever_the_clocks() {
        let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = ClientStore::open(old_dir.path(), crate::store::tests::test_store_key()).unwrap();
        let (me, bob, carol) = (
            UserId::from_bytes([1; 32]),
            UserId::from_bytes([2; 32]),
            UserId::from_bytes([3; 32]),
        );
        let group = GroupId::from_bytes([9; 16]);
        let now = now_ms();
        // Carol's clock runs 5 s behind Bob's; a 1:1 message falls between them.
        let stored = [
            record(Some(group), bob, "bob first", now - 3_000),
            record(None, bob, "direct", now - 2_500),
            record(Some(group), carol, "carol second", now - 7_000),
            record(Some(group), bob, "bob third", now - 1_000),
        ];
        old.write(|txn| {
            for one in &stored {
                history::append(txn, one)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            old.queue_history(me, DeviceId::from_bytes([4; 32]))
                .unwrap(),
            4
        );

        let new = ClientStore::open(new_dir.path(), crate::store::tests::test_store_key()).unwrap();
        for (_, entry) in old.pending(16).unwrap() {
            let OutboxContent::Encrypted(Payload::History {
                messages,
                done,
                total,
            }) = entry.content
            else {
                panic!("not a history part: {entry:?}");
            };
            new.write(|txn| apply_history(txn, messages, done, total))
                .unwrap();
        }
        for conversation in [Conversation::Group(group), Conversation::Direct(bob)] {
            assert_eq!(texts(&new, conversation), texts(&old, conversation));
        }
        assert_eq!(
            texts(&new, Conversation::Group(group)),
            ["bob first", "carol second", "bob third"]
        );
        let authors: Vec<UserId> = new
            .history(&Conversation::Group(group))
            .unwrap()
            .into_iter()
            .map(|record| record.peer)
            .collect();
        assert_eq!(authors, [bob, carol, bob]);
    }

    #[test]
    fn a_media_message_reaches_a_new_device_with_its_media_and_a_line_for_older_releases() {
        let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = ClientStore::open(old_dir.path(), crate::store::tests::test_store_key()).unwrap();
        let (me, bob) = (UserId::from_bytes([1; 32]), UserId::from_bytes([2; 32]));
        let mut photo = record(None, bob, "look", now_ms() - 1_000);
        photo.media = Some(Box::new(tidings_protocol::media::MediaMessage {
            blob: tidings_protocol::BlobRef {
                id: tidings_protocol::BlobId::of(b"sealed"),
                relay: "12D3KooWrelay".into(),
                size: 1016,
            },
            key: [7; 32],
            nonce: [1; 7],
            chunk: tidings_protocol::media::MEDIA_CHUNK,
            size: 1000,
            name: "beach.jpg".into(),
            mime: "image/jpeg".into(),
            kind: MediaKind::Image,
            thumbnail: None,
            caption: Some("look".into()),
        }));
        old.write(|txn| history::append(txn, &photo)).unwrap();
        old.queue_history(me, DeviceId::from_bytes([4; 32]))
            .unwrap();
        let new = ClientStore::open(new_dir.path(), crate::store::tests::test_store_key()).unwrap();
        for (_, entry) in old.pending(16).unwrap() {
            let OutboxContent::Encrypted(Payload::History {
                messages,
                done,
                total,
            }) = entry.content
            else {
                panic!("not a history part: {entry:?}");
            };
            // What a release before media shows: a line naming the file.
            assert_eq!(messages[0].text, "[photo] beach.jpg look");
            new.write(|txn| apply_history(txn, messages, done, total))
                .unwrap();
        }
        // Here: the caption, with the media to save (key and blob; no thumbnail).
        assert_eq!(texts(&new, Conversation::Direct(bob)), ["look"]);
        let shown = new.history(&Conversation::Direct(bob)).unwrap();
        let media = shown[0].media.as_ref().unwrap();
        assert_eq!((media.name.as_str(), media.key), ("beach.jpg", [7; 32]));
    }
}
