//! Groups on this device: descriptors, Megolm sessions, envelopes waiting for a key, and the
//! receipts members send for our group messages.

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_keys::{GroupInbound, GroupOutbound, Identity, MegolmError};
use tidings_protocol::{
    Address, Envelope, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient, UserId,
    content::{GroupSealed, MegolmBody, Payload},
    group::SignedDescriptor,
    now_ms,
};

use super::{
    ClientStore, StoreError, decode,
    descriptors::{accept_change, descriptor},
    device_lists, encode, history, outbox,
    tables::{
        Direction, GROUP_INBOUND, GROUP_OUTBOUND, GROUP_PENDING, GROUP_RECEIPTS, GROUPS,
        MessageRecord, MessageStatus, OutboundGroup, inbound_key, pending_arrival, pending_key,
        receipt_key,
    },
};
use crate::events::Event;

fn add_shared(txn: &WriteTxn<'_>, group: &GroupId, devices: &[Address]) -> Result<(), StoreError> {
    let mut table = txn.open_table(GROUP_OUTBOUND)?;
    let Some(mut state) = table
        .get(group.as_bytes())?
        .map(|bytes| decode::<OutboundGroup>("group_outbound", bytes.value()))
        .transpose()?
    else {
        return Ok(());
    };
    for device in devices {
        if !state.shared_with.contains(device) {
            state.shared_with.push(*device);
        }
    }
    table.insert(group.as_bytes(), encode(&state).as_slice())?;
    Ok(())
}

/// Stores the key a member sent for their session in `group`.
pub(super) fn add_inbound(
    txn: &WriteTxn<'_>,
    store_key: &tidings_keys::StoreKey,
    group: &GroupId,
    sender: &UserId,
    session_key: &[u8],
) -> Result<Result<String, MegolmError>, StoreError> {
    let inbound = match GroupInbound::from_session_key(session_key) {
        Ok(inbound) => inbound,
        Err(error) => return Ok(Err(error)),
    };
    let session_id = inbound.session_id();
    txn.open_table(GROUP_INBOUND)?.insert(
        inbound_key(group, sender, &session_id).as_str(),
        inbound.pickle(store_key).as_str(),
    )?;
    Ok(Ok(session_id))
}

/// Most envelopes of one member of one group kept waiting for that member's session key.
pub const MAX_PENDING_PER_SENDER: usize = 1_000;

/// What opening a group envelope gave.
pub(super) enum Opened {
    /// The decrypted plaintext, checked against its envelope.
    Sealed(GroupSealed),
    /// The session key has not arrived yet: kept until it does.
    Waiting,
    /// It cannot be opened; the reason.
    Failed(String),
}

/// Decrypts a group message, or parks it until its session key arrives.
pub(super) fn open_message(
    txn: &WriteTxn<'_>,
    store_key: &tidings_keys::StoreKey,
    envelope: &Envelope,
    raw: &RawEnvelope,
) -> Result<Opened, StoreError> {
    let Recipient::Group(group) = envelope.recipient else {
        return Ok(Opened::Failed("not a group envelope".into()));
    };
    let body = match MegolmBody::decode(&envelope.body) {
        Ok(body) => body,
        Err(error) => return Ok(Opened::Failed(error.to_string())),
    };
    let sender = envelope.sender.user;
    let key = inbound_key(&group, &sender, &body.session_id);
    let pickle = txn
        .open_table(GROUP_INBOUND)?
        .get(key.as_str())?
        .map(|pickle| pickle.value().to_string());
    let Some(pickle) = pickle else {
        // Kept only for a member of a group we know, and only so many: nobody can fill the
        // device with envelopes that wait for a key that never comes.
        if !descriptor(txn, &group)?.is_some_and(|known| known.descriptor.is_member(&sender)) {
            return Ok(Opened::Failed(
                "the sender is not a member of a group this device knows".into(),
            ));
        }
        let mut pending = txn.open_table(GROUP_PENDING)?;
        let (first, last) = pending_range(&group, &sender);
        let waiting = pending.range::<&[u8; 64]>(&first..=&last)?;
        if waiting.count() >= MAX_PENDING_PER_SENDER {
            return Ok(Opened::Failed(format!(
                "more than {MAX_PENDING_PER_SENDER} of this sender's messages wait for their key"
            )));
        }
        let arrival = pending
            .range::<&[u8; 64]>(&first..=&last)?
            .next_back()
            .transpose()?
            .map_or(0, |(key, _)| pending_arrival(key.value()).saturating_add(1));
        pending.insert(
            &pending_key(&group, &sender, arrival, &envelope.id),
            raw.as_bytes(),
        )?;
        return Ok(Opened::Waiting);
    };
    let mut inbound = match GroupInbound::unpickle(&pickle, store_key) {
        Ok(inbound) => inbound,
        Err(error) => return Ok(Opened::Failed(error.to_string())),
    };
    let plaintext = match inbound.decrypt(&body) {
        Ok(plaintext) => plaintext,
        Err(error) => return Ok(Opened::Failed(error.to_string())),
    };
    let sealed = match GroupSealed::decode(&plaintext) {
        Ok(sealed) => sealed,
        Err(error) => return Ok(Opened::Failed(error.to_string())),
    };
    if sealed.id != envelope.id || sealed.from != envelope.sender || sealed.group != group {
        return Ok(Opened::Failed(
            "the ciphertext was made for another envelope".into(),
        ));
    }
    if let Some(known) = descriptor(txn, &group)?
        && !known.descriptor.is_member(&sender)
    {
        return Ok(Opened::Failed(
            "the sender is not a member of the group".into(),
        ));
    }
    Ok(Opened::Sealed(sealed))
}

/// The first and last possible keys of `sender`'s waiting envelopes in `group`.
fn pending_range(group: &GroupId, sender: &UserId) -> ([u8; 64], [u8; 64]) {
    (
        pending_key(group, sender, 0, &EnvelopeId::from_bytes([0; 16])),
        pending_key(group, sender, u64::MAX, &EnvelopeId::from_bytes([0xff; 16])),
    )
}

/// Envelopes of `sender` in `group` that were waiting for a session key, oldest first.
pub(super) fn take_pending(
    txn: &WriteTxn<'_>,
    group: &GroupId,
    sender: &UserId,
) -> Result<Vec<RawEnvelope>, StoreError> {
    let mut table = txn.open_table(GROUP_PENDING)?;
    let (start, end) = pending_range(group, sender);
    let mut found = Vec::new();
    table.retain_in::<&[u8; 64], _>(&start..=&end, |_, bytes| {
        found.push(RawEnvelope::from_bytes(bytes.to_vec()));
        false
    })?;
    Ok(found)
}

/// The receipt rank of a member the relay could not deliver to (a bounce); any receipt
/// from the member outranks it.
const FAILED_RANK: u8 = 0;
/// The receipt rank of a member whose device has the message.
pub(super) const DELIVERED_RANK: u8 = 1;
/// The receipt rank of a member who read the message.
pub(super) const READ_RANK: u8 = 2;

/// The receipt rank a member holds for one of our group messages: None before any receipt,
/// then [`FAILED_RANK`], 1 (delivered), 2 (read).
pub(super) fn member_rank(
    txn: &WriteTxn<'_>,
    id: &EnvelopeId,
    member: &UserId,
) -> Result<Option<u8>, StoreError> {
    let table = txn.open_table(GROUP_RECEIPTS)?;
    Ok(table
        .get(&receipt_key(id, member))?
        .map(|rank| rank.value()))
}

/// Records a member's receipt (or bounce) for one of our group messages; returns the event
/// if it moved.
pub(super) fn record_receipt(
    txn: &WriteTxn<'_>,
    record: &MessageRecord,
    member: &UserId,
    status: &MessageStatus,
) -> Result<Option<Event>, StoreError> {
    let Some(group) = record.group else {
        return Ok(None);
    };
    let is_member = descriptor(txn, &group)?.is_some_and(|d| d.descriptor.is_member(member));
    if !is_member || record.direction != Direction::Outgoing {
        return Ok(None);
    }
    let rank = match status {
        MessageStatus::Failed(_) => FAILED_RANK,
        MessageStatus::Delivered => DELIVERED_RANK,
        MessageStatus::Read => READ_RANK,
        _ => return Ok(None),
    };
    let mut table = txn.open_table(GROUP_RECEIPTS)?;
    let key = receipt_key(&record.id, member);
    if table.get(&key)?.is_some_and(|held| held.value() >= rank) {
        return Ok(None);
    }
    table.insert(&key, rank)?;
    Ok(Some(Event::GroupReceipt {
        group,
        id: record.id,
        member: *member,
        status: status.clone(),
    }))
}

/// What the device must do before sending in a group: the session key and who lacks it.
#[derive(Debug, Clone)]
pub struct KeyPlan {
    /// The current session's key.
    pub session_key: Vec<u8>,
    /// Member devices (our own other devices too) that still need it.
    pub need: Vec<Address>,
    /// Members (or we) whose device list is not held yet: fetch it, then plan again.
    pub unlisted: Vec<UserId>,
}

/// How members stand with one of our group messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptCounts {
    /// Members it is for (all but us).
    pub members: usize,
    /// Members whose device has it (read counts too).
    pub delivered: usize,
    /// Members who read it.
    pub read: usize,
    /// Members their relay could not deliver it to (a full mailbox, an unreachable relay).
    pub failed: usize,
}

impl ClientStore {
    /// Takes descriptor versions the relay sent to fill a gap, oldest first, each checked
    /// against the one before (the first against what is held); returns how many applied.
    pub fn apply_group_versions(&self, versions: &[SignedDescriptor]) -> Result<usize, StoreError> {
        self.write(|txn| {
            let mut applied = 0;
            for version in versions {
                if let Err(error) = accept_change(txn, version)? {
                    tracing::info!(group = %version.descriptor.group, %error, "refusing a fetched group version");
                    break;
                }
                applied += 1;
            }
            Ok(applied)
        })
    }

    /// The newest descriptor held for a group.
    pub fn group(&self, group: &GroupId) -> Result<Option<SignedDescriptor>, StoreError> {
        self.read(|txn| match txn.open_table(GROUPS)?.get(group.as_bytes())? {
            Some(bytes) => {
                super::descriptors::open_descriptor(txn.at_rest, group, bytes.value()).map(Some)
            }
            None => Ok(None),
        })
    }

    /// Every group this device knows.
    pub fn groups(&self) -> Result<Vec<SignedDescriptor>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(GROUPS)?.iter()? {
                let (group, bytes) = entry?;
                let plain = txn.at_rest.open("groups", group.value(), bytes.value())?;
                if let Ok(descriptor) = SignedDescriptor::decode(&plain) {
                    out.push(descriptor);
                }
            }
            Ok(out)
        })
    }

    /// Makes sure this device has a current sending session for `group` (a new one if a
    /// member who had the old key left) and says who still needs its key.
    pub fn plan_group_key(
        &self,
        identity: &Identity,
        group: &GroupId,
    ) -> Result<Option<KeyPlan>, StoreError> {
        self.write(|txn| {
            let Some(known) = descriptor(txn, group)? else {
                return Ok(None);
            };
            let me = identity.address();
            let mut devices: Vec<Address> = Vec::new();
            let mut unlisted = Vec::new();
            for member in known.descriptor.members.iter() {
                let listed = device_lists::listed_devices(txn, &member.user)?;
                if listed.is_empty() {
                    unlisted.push(member.user);
                }
                devices.extend(
                    listed
                        .into_iter()
                        .map(|device| Address {
                            user: member.user,
                            device,
                        })
                        .filter(|address| *address != me),
                );
            }
            let mut table = txn.open_table(GROUP_OUTBOUND)?;
            let held = table
                .get(group.as_bytes())?
                .map(|bytes| decode::<OutboundGroup>("group_outbound", bytes.value()))
                .transpose()?;
            let state = match held {
                // Rotate when a device that holds the key is no longer a member's listed
                // device (the member left, or removed that device).
                Some(state)
                    if state
                        .shared_with
                        .iter()
                        .all(|device| devices.contains(device)) =>
                {
                    state
                }
                _ => {
                    let fresh = OutboundGroup {
                        pickle: GroupOutbound::new().pickle(identity.store_key()),
                        shared_with: Vec::new(),
                        queued_for: Vec::new(),
                    };
                    table.insert(group.as_bytes(), encode(&fresh).as_slice())?;
                    fresh
                }
            };
            let outbound = GroupOutbound::unpickle(&state.pickle, identity.store_key())
                .map_err(|error| StoreError::corrupt("group_outbound", error))?;
            // A member whose share waits in the outbox gets this session's first key from
            // there, on every device of theirs: a direct share now would carry a later
            // index, which cannot open what was sent before it.
            let need = devices
                .into_iter()
                .filter(|device| {
                    !state.shared_with.contains(device) && !state.queued_for.contains(&device.user)
                })
                .collect();
            unlisted.retain(|user| !state.queued_for.contains(user));
            Ok(Some(KeyPlan {
                session_key: outbound.session_key(),
                need,
                unlisted,
            }))
        })
    }

    /// Records that `devices` received the key of the current session of `group`.
    pub fn mark_key_shared(&self, group: &GroupId, devices: &[Address]) -> Result<(), StoreError> {
        self.write(|txn| add_shared(txn, group, devices))
    }

    /// Queues the key of the current session of `group` for `devices` whose share could not
    /// be sent now (their keys could not be claimed): the outbox keeps retrying (to every
    /// device of their users), so they can read what is sent meanwhile once it arrives.
    pub fn queue_key_shares(
        &self,
        group: GroupId,
        session_key: &[u8],
        devices: &[Address],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut users: Vec<UserId> = devices.iter().map(|device| device.user).collect();
            users.sort_unstable();
            users.dedup();
            for user in users {
                let payload = Payload::GroupKey {
                    group,
                    session_key: session_key.to_vec(),
                };
                outbox::enqueue_payload(txn, user, Kind::KeyShare, payload)?;
            }
            add_shared(txn, &group, devices)
        })
    }

    /// Queues the key of the current session of `group` for members whose devices are not
    /// known yet (their list could not be fetched): the outbox entry reaches every device of
    /// theirs once it can, and they are not asked about again for this session.
    pub fn queue_key_for_users(
        &self,
        group: GroupId,
        session_key: &[u8],
        users: &[UserId],
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            for user in users {
                let payload = Payload::GroupKey {
                    group,
                    session_key: session_key.to_vec(),
                };
                outbox::enqueue_payload(txn, *user, Kind::KeyShare, payload)?;
            }
            let mut table = txn.open_table(GROUP_OUTBOUND)?;
            let Some(mut state) = table
                .get(group.as_bytes())?
                .map(|bytes| decode::<OutboundGroup>("group_outbound", bytes.value()))
                .transpose()?
            else {
                return Ok(());
            };
            state.queued_for.extend(users.iter().copied());
            table.insert(group.as_bytes(), encode(&state).as_slice())?;
            Ok(())
        })
    }

    /// Receipt counts for one of our group messages.
    pub fn receipt_counts(&self, id: &EnvelopeId) -> Result<ReceiptCounts, StoreError> {
        let Some(record) = self.message(id)? else {
            return Ok(ReceiptCounts::default());
        };
        let Some(group) = record.group else {
            return Ok(ReceiptCounts::default());
        };
        let members = self
            .group(&group)?
            .map(|d| d.descriptor.members.len().saturating_sub(1))
            .unwrap_or(0);
        self.read(|txn| {
            let table = txn.open_table(GROUP_RECEIPTS)?;
            let start = receipt_key(id, &UserId::from_bytes([0; 32]));
            let end = receipt_key(id, &UserId::from_bytes([0xff; 32]));
            let mut counts = ReceiptCounts {
                members,
                ..ReceiptCounts::default()
            };
            for entry in table.range::<&[u8; 48]>(&start..=&end)? {
                match entry?.1.value() {
                    FAILED_RANK => counts.failed += 1,
                    DELIVERED_RANK => counts.delivered += 1,
                    _ => {
                        counts.delivered += 1;
                        counts.read += 1;
                    }
                }
            }
            Ok(counts)
        })
    }

    /// Each member's receipt status for one of our group messages.
    pub fn receipts(&self, id: &EnvelopeId) -> Result<Vec<(UserId, MessageStatus)>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(GROUP_RECEIPTS)?;
            let start = receipt_key(id, &UserId::from_bytes([0; 32]));
            let end = receipt_key(id, &UserId::from_bytes([0xff; 32]));
            let mut out = Vec::new();
            for entry in table.range::<&[u8; 48]>(&start..=&end)? {
                let (key, rank) = entry?;
                let mut member = [0u8; 32];
                member.copy_from_slice(&key.value()[16..]);
                let status = match rank.value() {
                    FAILED_RANK => MessageStatus::Failed("not delivered".into()),
                    1 => MessageStatus::Delivered,
                    _ => MessageStatus::Read,
                };
                out.push((UserId::from_bytes(member), status));
            }
            Ok(out)
        })
    }
}

/// The record of a group message we received.
pub(super) fn incoming(envelope: &Envelope, group: GroupId, text: String) -> MessageRecord {
    MessageRecord {
        id: envelope.id,
        peer: envelope.sender.user,
        group: Some(group),
        direction: Direction::Incoming,
        text,
        sent_at_ms: envelope.sent_at_ms,
        stored_at_ms: now_ms(),
        status: MessageStatus::Received,
        media: None,
    }
}

/// The record of a group message another device of ours sent.
pub(super) fn sent_elsewhere(envelope: &Envelope, group: GroupId, text: String) -> MessageRecord {
    MessageRecord {
        direction: Direction::Outgoing,
        status: MessageStatus::Sent,
        ..incoming(envelope, group, text)
    }
}

/// The record of a group change, shown in the group's history.
pub(super) fn change_notice(
    envelope: &Envelope,
    change: &SignedDescriptor,
    text: String,
) -> MessageRecord {
    MessageRecord {
        id: envelope.id,
        peer: envelope.sender.user,
        group: Some(change.descriptor.group),
        direction: Direction::Incoming,
        text,
        sent_at_ms: envelope.sent_at_ms,
        stored_at_ms: now_ms(),
        status: MessageStatus::Read,
        media: None,
    }
}

pub(super) use history::append as append_record;
