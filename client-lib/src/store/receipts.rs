//! Read state: marking a conversation read (one read-up-to marker per author) and applying
//! the receipts and markers peers send about our messages.

use std::collections::BTreeMap;

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_protocol::{
    EnvelopeId, GroupId, Kind, UserId,
    content::{Payload, ReceiptStatus},
};

use super::{
    ClientStore, StoreError,
    groups::{self, DELIVERED_RANK, READ_RANK},
    history, outbox, sync,
    tables::{
        Conversation, Direction, MESSAGES, MessageRecord, MessageStatus, OutboxContent, OutboxEntry,
    },
};
use crate::events::Event;

impl ClientStore {
    /// Marks every unread message of a conversation read and queues one read-up-to marker
    /// per author (naming that author's newest message) and a read marker for our (`me`)
    /// other devices, atomically; returns the ids read.
    pub fn mark_read(
        &self,
        me: UserId,
        conversation: &Conversation,
    ) -> Result<Vec<EnvelopeId>, StoreError> {
        self.write(|txn| {
            let mut newest: BTreeMap<UserId, EnvelopeId> = BTreeMap::new();
            let mut read = Vec::new();
            {
                let mut messages = txn.open_table(MESSAGES)?;
                let (start, end) = history::bounds(conversation);
                let mut unread = Vec::new();
                for entry in messages.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
                    let (key, bytes) = entry?;
                    let record: MessageRecord = txn.at_rest.open_record::<MessageRecord>(
                        "messages",
                        key.value(),
                        bytes.value(),
                    )?;
                    if record.direction == Direction::Incoming
                        && record.status == MessageStatus::Received
                    {
                        unread.push((key.value().to_vec(), record));
                    }
                }
                for (key, mut record) in unread {
                    record.status = MessageStatus::Read;
                    let sealed = txn.at_rest.seal_record("messages", &key, &record)?;
                    messages.insert(key.as_slice(), sealed.as_slice())?;
                    newest.insert(record.peer, record.id);
                    read.push(record.id);
                }
            }
            let group = match conversation {
                Conversation::Group(group) => Some(*group),
                Conversation::Direct(_) => None,
            };
            for (author, up_to) in newest {
                outbox::enqueue(
                    txn,
                    &OutboxEntry::new(
                        EnvelopeId::new(),
                        Conversation::Direct(author),
                        Kind::Receipt,
                        OutboxContent::Encrypted(Payload::ReadUpTo { group, up_to }),
                    ),
                )?;
            }
            if let Some(newest) = read.last() {
                sync::queue_sync(txn, me, sync::read_marker(*conversation, *newest))?;
            }
            Ok(read)
        })
    }
}

/// Applies a receipt from `peer` naming each message it covers; returns what moved.
pub(super) fn apply_receipt(
    txn: &WriteTxn<'_>,
    peer: &UserId,
    status: ReceiptStatus,
    ids: &[EnvelopeId],
) -> Result<Vec<Event>, StoreError> {
    let status = MessageStatus::from_receipt(status);
    let mut events = Vec::new();
    for id in ids {
        match history::find(txn, id)? {
            Some((_, record)) if record.group.is_some() => {
                events.extend(groups::record_receipt(txn, &record, peer, &status)?);
            }
            _ => {
                if let Some(record) = history::advance(txn, peer, id, status.clone())? {
                    events.push(status_event(record));
                }
            }
        }
    }
    Ok(events)
}

/// Applies `reader`'s marker "read everything you sent in this conversation up to
/// `up_to`"; returns what moved, oldest first.
///
/// Walks back from the marked message and stops at the first of ours the reader had
/// already read: an earlier marker covered everything before it, so a marker costs only
/// the messages it newly covers.
pub(super) fn apply_read_up_to(
    txn: &WriteTxn<'_>,
    reader: &UserId,
    group: Option<GroupId>,
    up_to: &EnvelopeId,
) -> Result<Vec<Event>, StoreError> {
    let conversation = match group {
        Some(group) => Conversation::Group(group),
        None => Conversation::Direct(*reader),
    };
    let Some((marked_key, marked)) = history::find(txn, up_to)? else {
        return Ok(Vec::new());
    };
    if marked.direction != Direction::Outgoing || marked.conversation() != conversation {
        return Ok(Vec::new());
    }
    let mut covered = Vec::new();
    {
        let messages = txn.open_table(MESSAGES)?;
        let (start, _) = history::bounds(&conversation);
        for entry in messages
            .range::<&[u8]>(start.as_slice()..=marked_key.as_slice())?
            .rev()
        {
            let (key, bytes) = entry?;
            let record: MessageRecord =
                txn.at_rest
                    .open_record::<MessageRecord>("messages", key.value(), bytes.value())?;
            if record.direction != Direction::Outgoing {
                continue;
            }
            match read_state(txn, &record, reader)? {
                ReadState::AlreadyRead => break,
                ReadState::Covered => covered.push(record),
                ReadState::NotTheirs => {}
            }
        }
    }
    let mut events = Vec::new();
    for record in covered.into_iter().rev() {
        if record.group.is_some() {
            events.extend(groups::record_receipt(
                txn,
                &record,
                reader,
                &MessageStatus::Read,
            )?);
        } else if let Some(record) = history::advance(txn, reader, &record.id, MessageStatus::Read)?
        {
            events.push(status_event(record));
        }
    }
    Ok(events)
}

/// Where one of our messages stands with a reader, for a read-up-to marker.
enum ReadState {
    /// Read already: so is everything before it.
    AlreadyRead,
    /// The marker makes it read.
    Covered,
    /// The reader never got it (it failed, or predates their joining the group).
    NotTheirs,
}

fn read_state(
    txn: &WriteTxn<'_>,
    record: &MessageRecord,
    reader: &UserId,
) -> Result<ReadState, StoreError> {
    if record.group.is_some() {
        return Ok(match groups::member_rank(txn, &record.id, reader)? {
            Some(READ_RANK) => ReadState::AlreadyRead,
            Some(DELIVERED_RANK) => ReadState::Covered,
            _ => ReadState::NotTheirs,
        });
    }
    Ok(match record.status {
        MessageStatus::Read => ReadState::AlreadyRead,
        // Pending too: the relay's "taken" answer may still be on its way when the marker
        // of a reader who already has the message arrives.
        MessageStatus::Pending | MessageStatus::Sent | MessageStatus::Delivered => {
            ReadState::Covered
        }
        MessageStatus::Failed(_) | MessageStatus::Received => ReadState::NotTheirs,
    })
}

/// The event for a 1:1 message whose status moved.
pub(super) fn status_event(record: MessageRecord) -> Event {
    Event::Status {
        peer: record.peer,
        id: record.id,
        status: record.status,
    }
}
