//! The outbox: messages and receipts waiting to be accepted by the relay, in order.

use redb::{ReadableTable, WriteTransaction};
use tidings_protocol::{
    BoundedVec, EnvelopeId, Kind, RawEnvelope, UserId,
    content::{Payload, ReceiptStatus},
    limits::MAX_RECEIPT_IDS,
    now_ms,
};

use super::{
    ClientStore, StoreError, decode, encode, history,
    tables::{
        Direction, MESSAGES, META, META_OUTBOX_SEQ, MessageRecord, MessageStatus, OUTBOX,
        OutboxEntry, message_key,
    },
};

/// How an outbox entry ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The relay holds it (✓).
    Sent,
    /// The relay refused it for good.
    Failed(String),
}

/// Adds an entry at the end of the outbox. Numbers are never reused, even after the entry
/// is gone, so a late answer about an old entry can never touch a newer one.
pub(super) fn enqueue(txn: &WriteTransaction, entry: &OutboxEntry) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let last = meta
        .get(META_OUTBOX_SEQ)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.value()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    let mut outbox = txn.open_table(OUTBOX)?;
    let in_table = outbox.last()?.map(|(key, _)| key.value()).unwrap_or(0);
    let seq = last.max(in_table) + 1;
    meta.insert(META_OUTBOX_SEQ, seq.to_be_bytes().as_slice())?;
    outbox.insert(seq, encode(entry).as_slice())?;
    Ok(seq)
}

/// Queues receipts for `ids` (several entries if there are many).
pub(super) fn enqueue_receipts(
    txn: &WriteTransaction,
    to: UserId,
    status: ReceiptStatus,
    ids: &[EnvelopeId],
) -> Result<(), StoreError> {
    for chunk in ids.chunks(MAX_RECEIPT_IDS) {
        let ids = BoundedVec::new(chunk.to_vec()).map_err(|error| StoreError::Corrupt {
            table: "outbox",
            reason: error.to_string(),
        })?;
        enqueue(
            txn,
            &OutboxEntry {
                id: EnvelopeId::random(),
                to,
                kind: Kind::Receipt,
                payload: Payload::Receipt { status, ids },
                sealed: None,
            },
        )?;
    }
    Ok(())
}

impl ClientStore {
    /// Records a text for `to` in the history (pending) and queues it, atomically.
    pub fn queue_text(&self, to: UserId, text: String) -> Result<MessageRecord, StoreError> {
        self.write(|txn| {
            let now = now_ms();
            let record = MessageRecord {
                id: EnvelopeId::random(),
                peer: to,
                direction: Direction::Outgoing,
                text: text.clone(),
                sent_at_ms: now,
                stored_at_ms: now,
                status: MessageStatus::Pending,
            };
            history::append(txn, &record)?;
            enqueue(
                txn,
                &OutboxEntry {
                    id: record.id,
                    to,
                    kind: Kind::Message,
                    payload: Payload::Text { text },
                    sealed: None,
                },
            )?;
            Ok(record)
        })
    }

    /// The first `limit` outbox entries, in order.
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(OUTBOX)?.iter()?.take(limit) {
                let (seq, bytes) = entry?;
                out.push((seq.value(), decode("outbox", bytes.value())?));
            }
            Ok(out)
        })
    }

    /// Records the sealed bytes of an entry, unless it was sealed already; returns the bytes
    /// that must be sent.
    pub(super) fn save_sealed(
        txn: &WriteTransaction,
        seq: u64,
        sealed: RawEnvelope,
    ) -> Result<RawEnvelope, StoreError> {
        let mut outbox = txn.open_table(OUTBOX)?;
        let Some(mut entry) = outbox
            .get(seq)?
            .map(|bytes| decode::<OutboxEntry>("outbox", bytes.value()))
            .transpose()?
        else {
            return Err(StoreError::NotFound(format!("outbox entry {seq}")));
        };
        if let Some(existing) = entry.sealed {
            return Ok(existing);
        }
        entry.sealed = Some(sealed.clone());
        outbox.insert(seq, encode(&entry).as_slice())?;
        Ok(sealed)
    }

    /// Removes entry `seq`, if it still holds envelope `id`, and moves its message's status;
    /// returns the updated message.
    pub fn finish(
        &self,
        seq: u64,
        id: EnvelopeId,
        finished: Finished,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.write(|txn| {
            let mut outbox = txn.open_table(OUTBOX)?;
            let Some(entry) = outbox
                .get(seq)?
                .map(|bytes| decode::<OutboxEntry>("outbox", bytes.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            if entry.id != id {
                return Ok(None);
            }
            outbox.remove(seq)?;
            drop(outbox);
            let status = match finished {
                Finished::Sent => MessageStatus::Sent,
                Finished::Failed(reason) => MessageStatus::Failed(reason),
            };
            history::advance(txn, &entry.to, &entry.id, status)
        })
    }

    /// Marks every unread message from `peer` read and queues one read receipt for them.
    pub fn mark_read(&self, peer: &UserId) -> Result<Vec<EnvelopeId>, StoreError> {
        self.write(|txn| {
            let mut read = Vec::new();
            {
                let mut messages = txn.open_table(MESSAGES)?;
                let start = message_key(peer, 0);
                let end = message_key(peer, u64::MAX);
                let mut unread = Vec::new();
                for entry in messages.range::<&[u8; 40]>(&start..=&end)? {
                    let (key, bytes) = entry?;
                    let record: MessageRecord = decode("messages", bytes.value())?;
                    if record.direction == Direction::Incoming
                        && record.status == MessageStatus::Received
                    {
                        unread.push((*key.value(), record));
                    }
                }
                for (key, mut record) in unread {
                    record.status = MessageStatus::Read;
                    messages.insert(&key, encode(&record).as_slice())?;
                    read.push(record.id);
                }
            }
            enqueue_receipts(txn, *peer, ReceiptStatus::Read, &read)?;
            Ok(read)
        })
    }
}
