//! Conversation history and message status.

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_protocol::{EnvelopeId, UserId};

use super::{
    ClientStore, StoreError,
    tables::{
        CONVERSATION_HEADS, Conversation, Direction, MESSAGE_IDS, MESSAGES, MessageRecord,
        MessageStatus, message_key,
    },
};

/// The sequence number of a conversation's first message when it starts on this release:
/// the numbers below it stay free for older messages another device of ours hands over
/// (a history is prepended, newest first).
const FIRST_SEQ: u64 = 1 << 32;

/// Writes `record` sealed into the history row `key` (not indexed: the callers that add a
/// message index it; a status change keeps its words).
pub(super) fn put_record(
    txn: &WriteTxn<'_>,
    key: &[u8],
    record: &MessageRecord,
) -> Result<(), StoreError> {
    let sealed = txn.at_rest.seal_record("messages", key, record)?;
    txn.open_table(MESSAGES)?.insert(key, sealed.as_slice())?;
    Ok(())
}

/// Appends a message to its conversation. Its envelope id then finds it (receipts, bounces),
/// unless the id already names a message: the first keeps it, so an envelope that reuses the
/// id of one of ours cannot take its receipts; and an incoming envelope that could not be
/// opened never claims its id (anyone can send one under any id).
pub(super) fn append(txn: &WriteTxn<'_>, record: &MessageRecord) -> Result<(), StoreError> {
    let conversation = record.conversation().key();
    let mut heads = txn.open_table(CONVERSATION_HEADS)?;
    let seq = heads
        .get(conversation.as_slice())?
        .map_or(FIRST_SEQ, |head| head.value() + 1);
    heads.insert(conversation.as_slice(), seq)?;
    let key = message_key(&record.conversation(), seq);
    super::search::index_record(txn, &key, record)?;
    put_record(txn, &key, record)?;
    let unopened = record.direction == Direction::Incoming
        && matches!(record.status, MessageStatus::Failed(_));
    let mut ids = txn.open_table(MESSAGE_IDS)?;
    if !unopened && ids.get(record.id.as_bytes())?.is_none() {
        ids.insert(record.id.as_bytes(), key.as_slice())?;
    }
    Ok(())
}

/// Appends a message unless its conversation holds one with its id already (a logical
/// message arrives once per device that sends it a copy); returns whether it was new.
pub(super) fn append_new(txn: &WriteTxn<'_>, record: &MessageRecord) -> Result<bool, StoreError> {
    if let Some((_, held)) = find(txn, &record.id)?
        && held.conversation() == record.conversation()
    {
        return Ok(false);
    }
    append(txn, record)?;
    Ok(true)
}

/// Puts a message before every message of its conversation (a history handed over newest
/// first), unless the conversation holds it already; returns whether it was new. A
/// conversation with no room before its first message (one a first release started) gets
/// it at its end.
pub(super) fn prepend_new(txn: &WriteTxn<'_>, record: &MessageRecord) -> Result<bool, StoreError> {
    if let Some((_, held)) = find(txn, &record.id)?
        && held.conversation() == record.conversation()
    {
        return Ok(false);
    }
    let conversation = record.conversation();
    let (start, end) = bounds(&conversation);
    let first = txn
        .open_table(MESSAGES)?
        .range::<&[u8]>(start.as_slice()..=end.as_slice())?
        .next()
        .transpose()?
        .map(|(key, _)| seq_of(key.value()));
    let seq = match first {
        Some(first) if first > 1 => first - 1,
        _ => {
            append(txn, record)?;
            return Ok(true);
        }
    };
    let key = message_key(&conversation, seq);
    super::search::index_record(txn, &key, record)?;
    put_record(txn, &key, record)?;
    let mut ids = txn.open_table(MESSAGE_IDS)?;
    if ids.get(record.id.as_bytes())?.is_none() {
        ids.insert(record.id.as_bytes(), key.as_slice())?;
    }
    Ok(true)
}

/// The sequence number at the end of a [`MESSAGES`] key.
fn seq_of(key: &[u8]) -> u64 {
    let mut seq = [0u8; 8];
    if let Some(tail) = key.len().checked_sub(8).and_then(|at| key.get(at..)) {
        seq.copy_from_slice(tail);
    }
    u64::from_be_bytes(seq)
}

/// Where the message with envelope id `id` is stored, if anywhere.
fn key_of(
    ids: &impl ReadableTable<&'static [u8; 16], &'static [u8]>,
    id: &EnvelopeId,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(ids.get(id.as_bytes())?.map(|key| key.value().to_vec()))
}

/// The message with envelope id `id`, and where it is stored.
pub(super) fn find(
    txn: &WriteTxn<'_>,
    id: &EnvelopeId,
) -> Result<Option<(Vec<u8>, MessageRecord)>, StoreError> {
    let Some(key) = key_of(&txn.open_table(MESSAGE_IDS)?, id)? else {
        return Ok(None);
    };
    let messages = txn.open_table(MESSAGES)?;
    let record = messages
        .get(key.as_slice())?
        .map(|bytes| {
            txn.at_rest
                .open_record::<MessageRecord>("messages", &key, bytes.value())
        })
        .transpose()?;
    Ok(record.map(|record| (key, record)))
}

/// Sets the status of the 1:1 message `id` exchanged with `peer` to what `change` returns
/// for its current status (None: leave it). Returns the record if it changed.
///
/// Only a direct message exchanged with `peer` may be changed: a receipt or bounce about
/// one conversation can never touch another.
fn update(
    txn: &WriteTxn<'_>,
    peer: &UserId,
    id: &EnvelopeId,
    change: impl FnOnce(&MessageStatus) -> Option<MessageStatus>,
) -> Result<Option<MessageRecord>, StoreError> {
    let Some((key, mut record)) = find(txn, id)? else {
        return Ok(None);
    };
    if record.conversation() != Conversation::Direct(*peer) {
        return Ok(None);
    }
    let Some(status) = change(&record.status) else {
        return Ok(None);
    };
    record.status = status;
    put_record(txn, &key, &record)?;
    Ok(Some(record))
}

/// Moves a message's status forward (never back).
pub(super) fn advance(
    txn: &WriteTxn<'_>,
    peer: &UserId,
    id: &EnvelopeId,
    status: MessageStatus,
) -> Result<Option<MessageRecord>, StoreError> {
    update(txn, peer, id, |current| {
        (status.rank() > current.rank()).then_some(status)
    })
}

/// Marks a message we sent as failed, unless it was already delivered or read.
pub(super) fn fail(
    txn: &WriteTxn<'_>,
    peer: &UserId,
    id: &EnvelopeId,
    reason: String,
) -> Result<Option<MessageRecord>, StoreError> {
    update(txn, peer, id, |current| {
        matches!(current, MessageStatus::Pending | MessageStatus::Sent)
            .then_some(MessageStatus::Failed(reason))
    })
}

/// Sets the status of a message we sent (any conversation), found by id.
pub(super) fn set_own_status(
    txn: &WriteTxn<'_>,
    id: &EnvelopeId,
    status: MessageStatus,
) -> Result<Option<MessageRecord>, StoreError> {
    let Some((key, mut record)) = find(txn, id)? else {
        return Ok(None);
    };
    if record.status.rank() >= status.rank() && !matches!(status, MessageStatus::Failed(_)) {
        return Ok(None);
    }
    record.status = status;
    put_record(txn, &key, &record)?;
    Ok(Some(record))
}

/// The range of one conversation's keys.
pub(super) fn bounds(conversation: &Conversation) -> (Vec<u8>, Vec<u8>) {
    (
        message_key(conversation, 0),
        message_key(conversation, u64::MAX),
    )
}

impl ClientStore {
    /// A conversation, oldest first.
    pub fn history(&self, conversation: &Conversation) -> Result<Vec<MessageRecord>, StoreError> {
        self.read(|txn| {
            let messages = txn.open_table(MESSAGES)?;
            let (start, end) = bounds(conversation);
            let mut out = Vec::new();
            for entry in messages.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
                let (key, bytes) = entry?;
                out.push(txn.at_rest.open_record::<MessageRecord>(
                    "messages",
                    key.value(),
                    bytes.value(),
                )?);
            }
            Ok(out)
        })
    }

    /// One message by envelope id.
    pub fn message(&self, id: &EnvelopeId) -> Result<Option<MessageRecord>, StoreError> {
        self.read(|txn| {
            let Some(key) = key_of(&txn.open_table(MESSAGE_IDS)?, id)? else {
                return Ok(None);
            };
            match txn.open_table(MESSAGES)?.get(key.as_slice())? {
                Some(bytes) => txn
                    .at_rest
                    .open_record::<MessageRecord>("messages", &key, bytes.value())
                    .map(Some),
                None => Ok(None),
            }
        })
    }
}
