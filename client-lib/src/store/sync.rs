//! Sync between this account's own devices: read markers and contact changes queued for our
//! other devices, and applied when another device of ours sends them.

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_protocol::{
    BoundedVec, ContactCard, EnvelopeId, Kind, UserId,
    content::{Chat, ContactChange, GroupHeld, MAX_SYNC_GROUPS, Payload},
    group::SignedDescriptor,
};

use super::{
    ClientStore, StoreError, contacts, device_lists, history, outbox,
    tables::{
        CONTACT_NAMES, CONTACTS, Conversation, Direction, GROUPS, MESSAGES, MessageRecord,
        MessageStatus,
    },
};
use crate::events::Event;

/// Queues a sync payload for our other devices (sealed for each when flushed), if our list
/// names any besides this one. Sync payloads travel as receipts: small, never shown.
pub(super) fn queue_sync(
    txn: &WriteTxn<'_>,
    me: UserId,
    payload: Payload,
) -> Result<(), StoreError> {
    if device_lists::listed_devices(txn, &me)?.len() < 2 {
        return Ok(());
    }
    outbox::enqueue_payload(txn, me, Kind::Receipt, payload)?;
    Ok(())
}

/// Another device of ours read `conversation` up to `up_to`: marks what we received there up
/// to it read (no receipts: that device sent them). Returns the event if anything changed.
pub(super) fn apply_read_marker(
    txn: &WriteTxn<'_>,
    conversation: Conversation,
    up_to: &EnvelopeId,
) -> Result<Vec<Event>, StoreError> {
    let Some((marked_key, marked)) = history::find(txn, up_to)? else {
        // Not here yet: the next marker (or reading here) covers it.
        return Ok(Vec::new());
    };
    if marked.conversation() != conversation || marked.direction != Direction::Incoming {
        return Ok(Vec::new());
    }
    let mut messages = txn.open_table(MESSAGES)?;
    let (start, _) = history::bounds(&conversation);
    let mut unread: Vec<(Vec<u8>, MessageRecord)> = Vec::new();
    for entry in messages.range::<&[u8]>(start.as_slice()..=marked_key.as_slice())? {
        let (key, bytes) = entry?;
        let record: MessageRecord =
            txn.at_rest
                .open_record::<MessageRecord>("messages", key.value(), bytes.value())?;
        if record.direction == Direction::Incoming && record.status == MessageStatus::Received {
            unread.push((key.value().to_vec(), record));
        }
    }
    let count = unread.len();
    for (key, mut record) in unread {
        record.status = MessageStatus::Read;
        let sealed = txn.at_rest.seal_record("messages", &key, &record)?;
        messages.insert(key.as_slice(), sealed.as_slice())?;
    }
    Ok(if count == 0 {
        Vec::new()
    } else {
        vec![Event::ReadElsewhere {
            conversation,
            count,
        }]
    })
}

/// Saves `card` under `name` (one name per user, one user per name: whatever held either
/// goes).
fn save_contact(txn: &WriteTxn<'_>, name: &str, card: &ContactCard) -> Result<(), StoreError> {
    remove_contact(txn, &card.user)?;
    if let Some(previous) = contacts::put_replacing(txn, name, card)?
        && previous.user != card.user
    {
        txn.open_table(CONTACT_NAMES)?
            .remove(previous.user.as_bytes())?;
    }
    Ok(())
}

/// Removes the contact of `user`; returns its name if there was one.
fn remove_contact(txn: &WriteTxn<'_>, user: &UserId) -> Result<Option<String>, StoreError> {
    contacts::remove_user(txn, user)
}

/// Applies a contact change another device of ours made.
pub(super) fn apply_contact_change(
    txn: &WriteTxn<'_>,
    change: ContactChange,
) -> Result<(), StoreError> {
    match change {
        ContactChange::Saved { name, card } => save_contact(txn, &name, &card),
        ContactChange::Removed { user } => remove_contact(txn, &user).map(|_| ()),
    }
}

impl ClientStore {
    /// Saves a new contact under `name` (a name or user already saved is a conflict) and
    /// tells our other devices.
    pub fn add_contact_synced(
        &self,
        me: UserId,
        name: &str,
        card: &ContactCard,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            contacts::refuse_taken(txn, name, card)?;
            save_contact(txn, name, card)?;
            let change = ContactChange::Saved {
                name: name.to_string(),
                card: card.clone(),
            };
            queue_sync(txn, me, Payload::Contact { change })
        })
    }

    /// Renames a contact and tells our other devices.
    pub fn rename_contact(&self, me: UserId, name: &str, new_name: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let Some(card) = contacts::named(txn, name)? else {
                return Err(StoreError::NotFound(format!("no contact named {name:?}")));
            };
            if contacts::named(txn, new_name)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a contact named {new_name:?} already exists"
                )));
            }
            save_contact(txn, new_name, &card)?;
            let change = ContactChange::Saved {
                name: new_name.to_string(),
                card,
            };
            queue_sync(txn, me, Payload::Contact { change })
        })
    }

    /// Tells our other devices every contact and every group (after our list gained a
    /// device, which then starts with them); returns how many contacts.
    pub fn sync_to_new_device(&self, me: UserId) -> Result<usize, StoreError> {
        self.write(|txn| {
            let mut groups = Vec::new();
            for entry in txn.open_table(GROUPS)?.iter()? {
                let (group, bytes) = entry?;
                let plain = txn.at_rest.open("groups", group.value(), bytes.value())?;
                if let Ok(known) = SignedDescriptor::decode(&plain)
                    && known.descriptor.is_member(&me)
                {
                    groups.push(GroupHeld {
                        group: known.descriptor.group,
                        version: known.descriptor.version,
                    });
                }
            }
            for chunk in groups.chunks(MAX_SYNC_GROUPS) {
                let groups = BoundedVec::new(chunk.to_vec())
                    .map_err(|error| StoreError::corrupt("groups", error))?;
                queue_sync(txn, me, Payload::Groups { groups })?;
            }
            let contacts = contacts::all(txn.at_rest, &txn.open_table(CONTACTS)?)?;
            for (name, card) in &contacts {
                let change = ContactChange::Saved {
                    name: name.clone(),
                    card: card.clone(),
                };
                queue_sync(txn, me, Payload::Contact { change })?;
            }
            Ok(contacts.len())
        })
    }

    /// Tells every contact, every co-member of our groups and our other devices that our
    /// device list is now `version`, so they ask for it before they next encrypt to us.
    /// Returns how many users were told.
    pub fn queue_devices_changed(&self, me: UserId, version: u64) -> Result<usize, StoreError> {
        self.write(|txn| {
            let mut told: std::collections::BTreeSet<UserId> = std::collections::BTreeSet::new();
            for entry in txn.open_table(CONTACT_NAMES)?.iter()? {
                let (user, _) = entry?;
                told.insert(UserId::from_bytes(*user.value()));
            }
            for entry in txn.open_table(GROUPS)?.iter()? {
                let (group, bytes) = entry?;
                let plain = txn.at_rest.open("groups", group.value(), bytes.value())?;
                if let Ok(known) = SignedDescriptor::decode(&plain)
                    && known.descriptor.is_member(&me)
                {
                    told.extend(known.descriptor.members.iter().map(|member| member.user));
                }
            }
            told.remove(&me);
            let notice = Payload::DevicesChanged { version };
            for user in &told {
                outbox::enqueue_payload(txn, *user, Kind::Receipt, notice.clone())?;
            }
            queue_sync(txn, me, notice)?;
            Ok(told.len())
        })
    }

    /// Removes a contact and tells our other devices.
    pub fn remove_contact(&self, me: UserId, name: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let Some(card) = contacts::named(txn, name)? else {
                return Err(StoreError::NotFound(format!("no contact named {name:?}")));
            };
            remove_contact(txn, &card.user)?;
            let change = ContactChange::Removed { user: card.user };
            queue_sync(txn, me, Payload::Contact { change })
        })
    }
}

/// The groups another device of ours named that this one holds no newer version of: the
/// session fetches their chains from the relay.
pub(super) fn groups_behind(
    txn: &WriteTxn<'_>,
    groups: &[GroupHeld],
) -> Result<Vec<GroupHeld>, StoreError> {
    let mut behind = Vec::new();
    for held in groups {
        let version = super::descriptors::descriptor(txn, &held.group)?
            .map_or(0, |known| known.descriptor.version);
        if version < held.version {
            behind.push(*held);
        }
    }
    Ok(behind)
}

/// The read marker for our other devices after reading `conversation` up to `up_to`.
pub(super) fn read_marker(conversation: Conversation, up_to: EnvelopeId) -> Payload {
    Payload::ReadMarker {
        chat: Chat::from(conversation),
        up_to,
    }
}
