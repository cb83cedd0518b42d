//! Conversation history and message status.

use redb::{ReadableTable, WriteTransaction};
use tidings_protocol::{EnvelopeId, UserId};

use super::{
    ClientStore, StoreError, decode, encode,
    tables::{
        CONVERSATION_HEADS, MESSAGE_IDS, MESSAGES, MessageRecord, MessageStatus, message_key,
    },
};

/// Appends a message to its conversation.
pub(super) fn append(txn: &WriteTransaction, record: &MessageRecord) -> Result<(), StoreError> {
    let mut heads = txn.open_table(CONVERSATION_HEADS)?;
    let seq = heads
        .get(record.peer.as_bytes())?
        .map(|head| head.value())
        .unwrap_or(0)
        + 1;
    heads.insert(record.peer.as_bytes(), seq)?;
    let key = message_key(&record.peer, seq);
    txn.open_table(MESSAGES)?
        .insert(&key, encode(record).as_slice())?;
    txn.open_table(MESSAGE_IDS)?
        .insert(record.id.as_bytes(), &key)?;
    Ok(())
}

/// Where the message with envelope id `id` is stored, if anywhere.
fn key_of(
    ids: &impl ReadableTable<&'static [u8; 16], &'static [u8; 40]>,
    id: &EnvelopeId,
) -> Result<Option<[u8; 40]>, StoreError> {
    Ok(ids.get(id.as_bytes())?.map(|key| *key.value()))
}

/// Sets the status of the message `id` exchanged with `peer` to what `change` returns for
/// its current status (None: leave it). Returns the record if it changed.
///
/// Only a message exchanged with `peer` may be changed: a receipt or bounce about one
/// conversation can never touch another.
fn update(
    txn: &WriteTransaction,
    peer: &UserId,
    id: &EnvelopeId,
    change: impl FnOnce(&MessageStatus) -> Option<MessageStatus>,
) -> Result<Option<MessageRecord>, StoreError> {
    let Some(key) = key_of(&txn.open_table(MESSAGE_IDS)?, id)? else {
        return Ok(None);
    };
    let mut messages = txn.open_table(MESSAGES)?;
    let Some(mut record) = messages
        .get(&key)?
        .map(|bytes| decode::<MessageRecord>("messages", bytes.value()))
        .transpose()?
    else {
        return Ok(None);
    };
    if record.peer != *peer {
        return Ok(None);
    }
    let Some(status) = change(&record.status) else {
        return Ok(None);
    };
    record.status = status;
    messages.insert(&key, encode(&record).as_slice())?;
    Ok(Some(record))
}

/// Moves a message's status forward (never back).
pub(super) fn advance(
    txn: &WriteTransaction,
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
    txn: &WriteTransaction,
    peer: &UserId,
    id: &EnvelopeId,
    reason: String,
) -> Result<Option<MessageRecord>, StoreError> {
    update(txn, peer, id, |current| {
        matches!(current, MessageStatus::Pending | MessageStatus::Sent)
            .then_some(MessageStatus::Failed(reason))
    })
}

impl ClientStore {
    /// The conversation with `peer`, oldest first.
    pub fn history(&self, peer: &UserId) -> Result<Vec<MessageRecord>, StoreError> {
        self.read(|txn| {
            let messages = txn.open_table(MESSAGES)?;
            let start = message_key(peer, 0);
            let end = message_key(peer, u64::MAX);
            let mut out = Vec::new();
            for entry in messages.range::<&[u8; 40]>(&start..=&end)? {
                let (_, bytes) = entry?;
                out.push(decode("messages", bytes.value())?);
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
            match txn.open_table(MESSAGES)?.get(&key)? {
                Some(bytes) => decode("messages", bytes.value()).map(Some),
                None => Ok(None),
            }
        })
    }
}
