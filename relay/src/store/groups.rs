//! Groups inside the batch transaction: descriptor chains and fan-out of group envelopes.

use bytes::Bytes;
use redb::ReadableTable;
use tidings_protocol::{
    Address, ErrorAnswer, ErrorCode, GroupId, UserId,
    group::{GroupError, SignedDescriptor},
};

use tidings_protocol::store::StoreError;

use super::{
    mail::NoRoom,
    outcomes::{
        DescriptorsOutcome, GroupDelivery, GroupEnvelope, GroupOutcome, NewEnvelope, StoreOutcome,
    },
    tables::{self},
    txn::{Tables, corrupt},
};

impl Tables<'_> {
    /// The newest descriptor held for `group`.
    pub fn group_head(&self, group: &GroupId) -> Result<Option<SignedDescriptor>, StoreError> {
        let Some(version) = self.group_heads.get(group.as_bytes())?.map(|v| v.value()) else {
            return Ok(None);
        };
        self.group_version(group, version)
    }

    fn group_version(
        &self,
        group: &GroupId,
        version: u64,
    ) -> Result<Option<SignedDescriptor>, StoreError> {
        let key = tables::group_version_key(group, version);
        match self.group_versions.get(&key)? {
            Some(bytes) => SignedDescriptor::decode(bytes.value())
                .map(Some)
                .map_err(|error| corrupt("group_versions", error)),
            None => Ok(None),
        }
    }

    /// Checks a descriptor against the newest held version (or as a first version) and
    /// stores it as the new head.
    fn accept_descriptor(
        &mut self,
        next: &SignedDescriptor,
    ) -> Result<Result<(), GroupError>, StoreError> {
        let verdict = self.check_descriptor(next)?;
        if let Ok(true) = verdict {
            self.put_descriptor(next)?;
        }
        Ok(verdict.map(|_| ()))
    }

    /// Whether `next` may follow the newest held version (or start the group): Ok(false) if
    /// it is that version already. Writes nothing.
    fn check_descriptor(
        &self,
        next: &SignedDescriptor,
    ) -> Result<Result<bool, GroupError>, StoreError> {
        Ok(match self.group_head(&next.descriptor.group)? {
            Some(known) if known == *next => Ok(false),
            Some(known) => next.check_successor(&known).map(|()| true),
            None => next.check_genesis().map(|()| true),
        })
    }

    /// Stores a checked descriptor as its group's newest version.
    fn put_descriptor(&mut self, next: &SignedDescriptor) -> Result<(), StoreError> {
        let group = next.descriptor.group;
        let version = next.descriptor.version;
        self.group_versions.insert(
            &tables::group_version_key(&group, version),
            next.encode().as_slice(),
        )?;
        self.group_heads.insert(group.as_bytes(), version)?;
        Ok(())
    }

    /// Stores consecutive descriptor versions another relay sent to bring us up to date.
    pub fn store_descriptors(
        &mut self,
        versions: &[SignedDescriptor],
        awaited: bool,
    ) -> Result<DescriptorsOutcome, StoreError> {
        // A group not held here is taken only if a version sent names a member living here,
        // or if this relay is waiting for it (it answered `group_out_of_date` to a forward
        // for members here: they may be added by a later version than this request carries).
        // Nobody else can make the relay keep a group.
        let mut checked: Vec<GroupId> = Vec::new();
        for version in versions {
            let group = version.descriptor.group;
            if checked.contains(&group) || awaited {
                continue;
            }
            checked.push(group);
            if self.group_head(&group)?.is_some() {
                continue;
            }
            let mut named = false;
            for other in versions.iter().filter(|v| v.descriptor.group == group) {
                for member in other.descriptor.members.iter() {
                    if self.is_local(&member.user)? {
                        named = true;
                        break;
                    }
                }
                if named {
                    break;
                }
            }
            if !named {
                return Ok(DescriptorsOutcome::NoMemberHere);
            }
        }
        let mut head = 0;
        for next in versions {
            if let Some(known) = self.group_head(&next.descriptor.group)?
                && known.descriptor.version >= next.descriptor.version
            {
                head = known.descriptor.version;
                continue;
            }
            if let Err(error) = self.accept_descriptor(next)? {
                return Ok(DescriptorsOutcome::Rejected(error));
            }
            head = next.descriptor.version;
        }
        Ok(DescriptorsOutcome::Stored { version: head })
    }

    /// Stores a group envelope from a local member: applies its descriptor change, if any,
    /// then hands it to every other member once (local mailboxes share one blob; members
    /// elsewhere get outbox entries sharing one body). Everything is checked before anything
    /// is written, so a refused envelope leaves nothing behind in the batch's transaction.
    pub fn store_group_envelope(
        &mut self,
        item: &GroupEnvelope,
    ) -> Result<GroupOutcome, StoreError> {
        let probe = NewEnvelope {
            id: item.id,
            sender: item.sender,
            recipient: item.sender,
            device: None,
            bytes: item.bytes.clone(),
        };
        match self.seen(&probe)? {
            Some(StoreOutcome::Duplicate) => return Ok(GroupOutcome::Duplicate),
            Some(_) => return Ok(GroupOutcome::IdReused),
            None => {}
        }
        let before = self.group_head(&item.group)?;
        let (governing, new_version) = match &item.change {
            Some(change) => {
                let sender = Address {
                    user: item.sender,
                    device: item.sender_device,
                };
                if !change.sent_by(&sender) || change.descriptor.group != item.group {
                    return Ok(GroupOutcome::BadDescriptor(GroupError::NotAllowed(
                        "a sender who is not the descriptor's author (or its signing device)",
                    )));
                }
                match self.check_descriptor(change)? {
                    Ok(new) => (change.clone(), new),
                    Err(error) => return Ok(GroupOutcome::BadDescriptor(error)),
                }
            }
            None => match &before {
                Some(head) => (head.clone(), false),
                None => return Ok(GroupOutcome::UnknownGroup),
            },
        };
        if item.change.is_none() && !governing.descriptor.is_member(&item.sender) {
            return Ok(GroupOutcome::NotMember);
        }
        // A change also reaches those it removes, so they learn of it.
        let mut recipients: Vec<UserId> = governing
            .descriptor
            .members
            .iter()
            .map(|member| member.user)
            .collect();
        if item.change.is_some()
            && let Some(before) = &before
        {
            recipients.extend(before.descriptor.members.iter().map(|member| member.user));
            recipients.sort();
            recipients.dedup();
        }
        // The sender's own other devices get it too; the sending device does not.
        if !recipients.contains(&item.sender) {
            recipients.push(item.sender);
        }
        let mut here = Vec::new();
        let mut elsewhere = Vec::new();
        for user in recipients {
            if self.is_local(&user)? {
                // A suspended member's devices get nothing until they are resumed.
                if !self.is_suspended(&user)? {
                    here.push(user);
                }
            } else if user != item.sender {
                elsewhere.push(user);
            }
        }
        match self.outbox_room(&item.sender, elsewhere.len() as u64)? {
            None => {}
            Some(NoRoom::Outbox) => return Ok(GroupOutcome::OutboxFull),
            Some(NoRoom::SenderShare) => return Ok(GroupOutcome::OutboxShareFull),
        }

        // Nothing below refuses the envelope.
        if new_version {
            self.put_descriptor(&governing)?;
        }
        let reference = Bytes::copy_from_slice(&tables::blob_ref(&item.id));
        let mut local = 0usize;
        for user in here {
            let mut full = false;
            for device in self.devices_of(&user)? {
                if device == item.sender_device {
                    continue;
                }
                if self
                    .push_mailbox(&device, &reference, &item.bytes)?
                    .is_some()
                {
                    local += 1;
                } else {
                    full = true;
                }
            }
            if full {
                // One full mailbox must not hold up the group; the sender is told.
                let reason =
                    ErrorAnswer::new(ErrorCode::QuotaExceeded, "the member's mailbox is full");
                self.notify_sender(&item.sender, item.id, user, reason)?;
            }
        }
        let queued = elsewhere.len();
        for user in elsewhere {
            self.insert_outbox(&NewEnvelope {
                id: item.id,
                sender: item.sender,
                recipient: user,
                device: None,
                bytes: item.bytes.clone(),
            })?;
        }
        self.hold_blob(&item.id, &item.bytes, local as u64)?;
        self.mark_seen(&probe)?;
        Ok(GroupOutcome::Accepted { local, queued })
    }

    /// Stores a group envelope's bytes once for `references` new mailbox entries.
    fn hold_blob(
        &mut self,
        id: &tidings_protocol::EnvelopeId,
        bytes: &Bytes,
        references: u64,
    ) -> Result<(), StoreError> {
        if references == 0 {
            return Ok(());
        }
        let id = id.as_bytes();
        let held = self
            .blob_refs
            .get(id)?
            .map(|refs| refs.value())
            .unwrap_or(0);
        if held == 0 {
            self.blobs.insert(id, bytes.as_ref())?;
        }
        self.blob_refs.insert(id, held + references)?;
        Ok(())
    }

    /// Stores group envelopes another relay forwarded for members living here; one outcome
    /// per recipient, items in order.
    pub fn store_group_deliveries(
        &mut self,
        items: &[GroupDelivery],
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        let mut outcomes = Vec::new();
        for item in items {
            outcomes.extend(self.store_group_delivery(item)?);
        }
        Ok(outcomes)
    }

    fn store_group_delivery(
        &mut self,
        item: &GroupDelivery,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        let all = |outcome| vec![outcome; item.recipients.len()];
        // Membership is decided by the versions held here, never by the version the sending
        // relay names: that only tells this relay when it is behind. A change governs its own
        // delivery and also reaches those it removes.
        let (governing, previous) = match &item.change {
            Some(change) => match self.take_forwarded_change(change, &item.recipients)? {
                Ok(previous) => (change.clone(), previous),
                Err(outcome) => return Ok(all(outcome)),
            },
            None => match self.group_head(&item.group)? {
                Some(head) if head.descriptor.version >= item.version => (head, None),
                _ => return Ok(all(StoreOutcome::GroupOutOfDate)),
            },
        };
        let member_of = |user: &UserId| {
            governing.descriptor.is_member(user)
                || previous
                    .as_ref()
                    .is_some_and(|p| p.descriptor.is_member(user))
        };
        if !member_of(&item.sender) {
            return Ok(all(StoreOutcome::NotMember));
        }
        let reference = Bytes::copy_from_slice(&tables::blob_ref(&item.id));
        let mut outcomes = Vec::with_capacity(item.recipients.len());
        let mut stored = 0u64;
        for user in &item.recipients {
            let key = tables::delivery_key(&item.sender, &item.id, user);
            let outcome = if !self.is_local(user)? {
                if self.was_removed(user)? {
                    StoreOutcome::Removed
                } else {
                    StoreOutcome::NotHere
                }
            } else if self.is_suspended(user)? {
                StoreOutcome::Suspended
            } else if !member_of(user) {
                StoreOutcome::NotMember
            } else if let Some(earlier) = self.seen_key(&key, &item.bytes)? {
                earlier
            } else {
                // One entry per device of the member, all pointing at the one blob.
                let mut outcome = StoreOutcome::UnknownDevice;
                for device in self.devices_of(user)? {
                    match self.push_forwarded(&item.origin, &device, &reference, &item.bytes)? {
                        Ok(seq) => {
                            stored += 1;
                            outcome = StoreOutcome::Accepted { seq };
                        }
                        Err(refused) if !matches!(outcome, StoreOutcome::Accepted { .. }) => {
                            outcome = refused;
                        }
                        Err(_) => {}
                    }
                }
                if matches!(outcome, StoreOutcome::Accepted { .. }) {
                    self.mark_seen_key(&key, &item.bytes)?;
                }
                outcome
            };
            outcomes.push(outcome);
        }
        self.hold_blob(&item.id, &item.bytes, stored)?;
        Ok(outcomes)
    }

    /// Checks a group change another relay forwarded against the chain held here, storing it
    /// if it is the next version. Returns the version before it, or the outcome for all its
    /// recipients: behind (the sending relay then sends the missing versions first), or a
    /// change that does not follow (forged, forked, or not identical to the version held).
    fn take_forwarded_change(
        &mut self,
        change: &SignedDescriptor,
        recipients: &[UserId],
    ) -> Result<Result<Option<SignedDescriptor>, StoreOutcome>, StoreError> {
        let group = change.descriptor.group;
        let version = change.descriptor.version;
        let before = match version {
            1 => None,
            version => self.group_version(&group, version - 1)?,
        };
        if let Some(held) = self.group_version(&group, version)? {
            return Ok(if held == *change {
                Ok(before)
            } else {
                Err(StoreOutcome::BadDescriptor)
            });
        }
        let head = self.group_head(&group)?;
        if head.is_none() && !self.names_local_member(change, recipients)? {
            // Nothing is kept for a group none of whose members live here.
            return Ok(Err(StoreOutcome::NotHere));
        }
        match self.accept_descriptor(change)? {
            Ok(()) => Ok(Ok(head)),
            Err(GroupError::Gap { .. }) => Ok(Err(StoreOutcome::GroupOutOfDate)),
            Err(_) if head.is_none() && version > 1 => Ok(Err(StoreOutcome::GroupOutOfDate)),
            Err(error) => {
                tracing::info!(%group, version, %error, "refusing a forwarded group change");
                Ok(Err(StoreOutcome::BadDescriptor))
            }
        }
    }

    /// Whether one of `recipients` lives here and is a member of the change.
    fn names_local_member(
        &self,
        change: &SignedDescriptor,
        recipients: &[UserId],
    ) -> Result<bool, StoreError> {
        for user in recipients {
            if change.descriptor.is_member(user) && self.is_local(user)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
