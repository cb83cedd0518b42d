//! The outbox: messages, group changes and receipts waiting to be accepted by the relay, in
//! order.

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_protocol::{
    BoundedVec, EnvelopeId, Kind, UserId,
    content::{Payload, ReceiptStatus},
    group::SignedDescriptor,
    limits::MAX_RECEIPT_IDS,
    now_ms,
};

use super::{
    ClientStore, StoreError, descriptors, history,
    tables::{
        Conversation, Direction, META, META_OUTBOX_SEQ, MessageRecord, MessageStatus, OUTBOX,
        OutboxContent, OutboxEntry, SealedCopy,
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
pub(super) fn enqueue(txn: &WriteTxn<'_>, entry: &OutboxEntry) -> Result<u64, StoreError> {
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
    let sealed = txn
        .at_rest
        .seal_record("outbox", &seq.to_be_bytes(), entry)?;
    outbox.insert(seq, sealed.as_slice())?;
    Ok(seq)
}

/// Queues receipts for `ids` (several entries if there are many).
/// Queues `payload` for every device of `to` (our other devices when `to` is us), under a
/// fresh id, sealed when flushed.
pub(super) fn enqueue_payload(
    txn: &WriteTxn<'_>,
    to: UserId,
    kind: Kind,
    payload: Payload,
) -> Result<u64, StoreError> {
    enqueue(
        txn,
        &OutboxEntry::new(
            EnvelopeId::new(),
            Conversation::Direct(to),
            kind,
            OutboxContent::Encrypted(payload),
        ),
    )
}

pub(super) fn enqueue_receipts(
    txn: &WriteTxn<'_>,
    to: UserId,
    status: ReceiptStatus,
    ids: &[EnvelopeId],
) -> Result<(), StoreError> {
    for chunk in ids.chunks(MAX_RECEIPT_IDS) {
        let ids = BoundedVec::new(chunk.to_vec())
            .map_err(|error| StoreError::corrupt("outbox", error))?;
        enqueue(
            txn,
            &OutboxEntry::new(
                EnvelopeId::new(),
                Conversation::Direct(to),
                Kind::Receipt,
                OutboxContent::Encrypted(Payload::Receipt { status, ids }),
            ),
        )?;
    }
    Ok(())
}

impl ClientStore {
    /// Records texts (pending) in a conversation and queues them, in order, in one
    /// transaction.
    pub fn queue_texts(
        &self,
        me: UserId,
        to: Conversation,
        texts: Vec<String>,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.write(|txn| {
            let now = now_ms();
            let (peer, group) = match to {
                Conversation::Direct(user) => (user, None),
                Conversation::Group(group) => (me, Some(group)),
            };
            let mut records = Vec::with_capacity(texts.len());
            for text in &texts {
                let record = MessageRecord {
                    id: EnvelopeId::new(),
                    peer,
                    group,
                    direction: Direction::Outgoing,
                    text: text.clone(),
                    sent_at_ms: now,
                    stored_at_ms: now,
                    status: MessageStatus::Pending,
                    media: None,
                };
                history::append(txn, &record)?;
                enqueue(
                    txn,
                    &OutboxEntry::new(
                        record.id,
                        to,
                        Kind::Message,
                        OutboxContent::Encrypted(Payload::Text { text: text.clone() }),
                    ),
                )?;
                records.push(record);
            }
            Ok(records)
        })
    }

    /// Queues a signed change of a group's descriptor; it applies here once the relay takes it.
    pub fn queue_group_change(&self, change: &SignedDescriptor) -> Result<EnvelopeId, StoreError> {
        self.write(|txn| {
            let id = EnvelopeId::new();
            enqueue(
                txn,
                &OutboxEntry::new(
                    id,
                    Conversation::Group(change.descriptor.group),
                    Kind::GroupControl,
                    OutboxContent::Plain(change.encode()),
                ),
            )?;
            Ok(id)
        })
    }

    /// The first `limit` outbox entries, in order.
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(OUTBOX)?.iter()?.take(limit) {
                let (seq, bytes) = entry?;
                let seq = seq.value();
                let entry = txn
                    .at_rest
                    .open_record("outbox", &seq.to_be_bytes(), bytes.value())?;
                out.push((seq, entry));
            }
            Ok(out)
        })
    }

    /// Records the sealed bytes of an entry, unless it was sealed already; returns the bytes
    /// that must be sent.
    pub(super) fn save_sealed(
        txn: &WriteTxn<'_>,
        seq: u64,
        sealed: Vec<SealedCopy>,
    ) -> Result<Vec<SealedCopy>, StoreError> {
        let mut outbox = txn.open_table(OUTBOX)?;
        let Some(mut entry) = outbox
            .get(seq)?
            .map(|bytes| {
                txn.at_rest
                    .open_record::<OutboxEntry>("outbox", &seq.to_be_bytes(), bytes.value())
            })
            .transpose()?
        else {
            return Err(StoreError::NotFound(format!("outbox entry {seq}")));
        };
        if !entry.sealed.is_empty() {
            return Ok(entry.sealed);
        }
        entry.sealed = sealed.clone();
        let bytes = txn
            .at_rest
            .seal_record("outbox", &seq.to_be_bytes(), &entry)?;
        outbox.insert(seq, bytes.as_slice())?;
        Ok(sealed)
    }

    /// Removes entry `seq`, if it still holds envelope `id`, and moves its message's status
    /// (a group change is applied here once the relay took it); returns the updated message.
    pub fn finish(
        &self,
        seq: u64,
        id: EnvelopeId,
        finished: Finished,
    ) -> Result<Option<MessageRecord>, StoreError> {
        Ok(self.finish_many(vec![(seq, id, finished)])?.pop().flatten())
    }

    /// Finishes several entries (as [`ClientStore::finish`]) in one transaction, in order.
    pub fn finish_many(
        &self,
        entries: Vec<(u64, EnvelopeId, Finished)>,
    ) -> Result<Vec<Option<MessageRecord>>, StoreError> {
        self.write(|txn| {
            entries
                .iter()
                .map(|(seq, id, finished)| finish_entry(txn, *seq, id, finished.clone()))
                .collect()
        })
    }
}

/// Finishes one entry inside `txn` (see [`ClientStore::finish`]).
fn finish_entry(
    txn: &WriteTxn<'_>,
    seq: u64,
    id: &EnvelopeId,
    finished: Finished,
) -> Result<Option<MessageRecord>, StoreError> {
    let mut outbox = txn.open_table(OUTBOX)?;
    let Some(entry) = outbox
        .get(seq)?
        .map(|bytes| {
            txn.at_rest
                .open_record::<OutboxEntry>("outbox", &seq.to_be_bytes(), bytes.value())
        })
        .transpose()?
    else {
        return Ok(None);
    };
    if entry.id != *id {
        return Ok(None);
    }
    outbox.remove(seq)?;
    drop(outbox);
    if let (Finished::Sent, OutboxContent::Plain(bytes)) = (&finished, &entry.content) {
        descriptors::apply_own_change(txn, bytes)?;
    }
    let status = match finished {
        Finished::Sent => MessageStatus::Sent,
        Finished::Failed(reason) => MessageStatus::Failed(reason),
    };
    match entry.to {
        Conversation::Direct(peer) => match status {
            MessageStatus::Failed(reason) => history::fail(txn, &peer, &entry.id, reason),
            status => history::advance(txn, &peer, &entry.id, status),
        },
        Conversation::Group(_) => history::set_own_status(txn, &entry.id, status),
    }
}
