//! Mailboxes, the outbox, bounces and handoffs inside the batch transaction.

use bytes::Bytes;
use redb::ReadableTable;
use tidings_protocol::{
    Bounce, DeviceId, EnvelopeId, ErrorAnswer, MailboxItem, RawEnvelope, Recipient, UserId,
};

use tidings_protocol::store::StoreError;

use super::{
    media::named_blobs,
    outcomes::{HandoffItem, NewEnvelope, Origin, StoreOutcome},
    tables::{self, OutboxMeta, SeenMark},
    txn::Tables,
};
use crate::mailbox::Publication;

/// Why the outbox cannot take more entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoRoom {
    /// It is full.
    Outbox,
    /// The sender's envelopes hold their whole share of it.
    SenderShare,
}

impl Tables<'_> {
    pub fn store_envelopes(
        &mut self,
        items: &[NewEnvelope],
        origin: Origin,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        items
            .iter()
            .map(|item| self.store_envelope(item, origin))
            .collect()
    }

    /// What an earlier envelope with this id means for one arriving now, if anything.
    pub(super) fn seen(&self, item: &NewEnvelope) -> Result<Option<StoreOutcome>, StoreError> {
        self.seen_key(&tables::seen_key(&item.sender, &item.id), &item.bytes)
    }

    /// Like [`Tables::seen`], under any dedupe key.
    pub(super) fn seen_key(
        &self,
        id: &tables::SeenKey,
        bytes: &[u8],
    ) -> Result<Option<StoreOutcome>, StoreError> {
        let mark = match self.seen_now.get(id)? {
            Some(mark) => Some(SeenMark::from_bytes(mark.value())),
            None => self
                .seen_before
                .get(id)?
                .map(|mark| SeenMark::from_bytes(mark.value())),
        };
        Ok(mark.map(|mark| {
            if mark.fingerprint == tables::fingerprint(bytes) {
                StoreOutcome::Duplicate
            } else {
                StoreOutcome::IdReused
            }
        }))
    }

    pub(super) fn mark_seen(&mut self, item: &NewEnvelope) -> Result<(), StoreError> {
        self.mark_seen_key(&tables::seen_key(&item.sender, &item.id), &item.bytes)
    }

    /// Like [`Tables::mark_seen`], under any dedupe key.
    pub(super) fn mark_seen_key(
        &mut self,
        id: &tables::SeenKey,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let mark = SeenMark {
            fingerprint: tables::fingerprint(bytes),
            at_ms: self.now_ms,
        };
        self.seen_now.insert(id, &mark.to_bytes())?;
        Ok(())
    }

    fn store_envelope(
        &mut self,
        item: &NewEnvelope,
        origin: Origin,
    ) -> Result<StoreOutcome, StoreError> {
        if let Some(earlier) = self.seen(item)? {
            tracing::trace!(id = %item.id, ?earlier, "envelope seen before");
            return Ok(earlier);
        }
        let outcome = if self.is_local(&item.recipient)? {
            if self.is_suspended(&item.recipient)? {
                return Ok(StoreOutcome::Suspended);
            }
            let device = match item.device {
                Some(device) if self.device_owner(&device)? == Some(item.recipient) => device,
                _ => return Ok(StoreOutcome::UnknownDevice),
            };
            let pushed = match origin {
                Origin::Client => self.push_mailbox(&device, &item.bytes, &item.bytes)?,
                Origin::Federation(relay) => {
                    match self.push_forwarded(&relay, &device, &item.bytes, &item.bytes)? {
                        Ok(seq) => Some(seq),
                        Err(outcome) => return Ok(outcome),
                    }
                }
            };
            match pushed {
                Some(seq) => StoreOutcome::Accepted { seq },
                None => return Ok(StoreOutcome::MailboxFull),
            }
        } else if matches!(origin, Origin::Federation(_)) && self.was_removed(&item.recipient)? {
            // Another relay still routes them here; from a device here the envelope is
            // queued, and the forwarder bounces it unless a newer home turns up.
            return Ok(StoreOutcome::Removed);
        } else {
            match origin {
                Origin::Federation(_) => return Ok(StoreOutcome::NotHere),
                Origin::Client => match self.queue_outbox(item)? {
                    Ok(seq) => StoreOutcome::Queued { seq },
                    Err(NoRoom::Outbox) => return Ok(StoreOutcome::OutboxFull),
                    Err(NoRoom::SenderShare) => return Ok(StoreOutcome::OutboxShareFull),
                },
            }
        };
        self.mark_seen(item)?;
        tracing::trace!(id = %item.id, recipient = %item.recipient, ?outcome, "stored envelope");
        Ok(outcome)
    }

    /// Appends `stored` to a local device's mailbox and tells subscribers `delivered` (the
    /// same bytes, or the envelope a blob reference stands for); None when the mailbox is at
    /// its quota.
    pub(super) fn push_mailbox(
        &mut self,
        device: &DeviceId,
        stored: &Bytes,
        delivered: &Bytes,
    ) -> Result<Option<u64>, StoreError> {
        let mut cursor = self.cursor(device)?;
        if cursor.pending() >= self.config.limits.mailbox_max_envelopes {
            return Ok(None);
        }
        // What the device holds is the envelope, whether stored here or as a blob reference.
        let held = self.mailbox_size(device)?;
        let size = held.saturating_add(delivered.len() as u64);
        if size > self.config.limits.mailbox_max_bytes {
            return Ok(None);
        }
        self.dirty_bytes.insert(*device, size);
        cursor.head += 1;
        let seq = cursor.head;
        self.mailbox
            .insert(&tables::mailbox_key(device, seq), stored.as_ref())?;
        self.dirty_cursors.insert(*device, cursor);
        let named = self.named_in(delivered);
        self.reference_media(&named)?;
        self.effects.publications.push(Publication {
            device: *device,
            seq,
            bytes: delivered.clone(),
        });
        Ok(Some(seq))
    }

    /// Like [`Tables::push_mailbox`] for an entry another relay forwarded, within that
    /// relay's share of the mailboxes here (the entry remembers where it came from, so an
    /// ack gives the share back).
    pub(super) fn push_forwarded(
        &mut self,
        relay: &libp2p::PeerId,
        device: &DeviceId,
        stored: &Bytes,
        delivered: &Bytes,
    ) -> Result<Result<u64, StoreOutcome>, StoreError> {
        let tag = tables::relay_tag(relay);
        let held = self.held_for(&tag)?;
        if held >= self.config.limits.relay_mailbox_max_envelopes {
            return Ok(Err(StoreOutcome::RelayShareFull));
        }
        let Some(seq) = self.push_mailbox(device, stored, delivered)? else {
            return Ok(Err(StoreOutcome::MailboxFull));
        };
        self.mailbox_origins
            .insert(&tables::mailbox_key(device, seq), &tag)?;
        self.dirty_holds.insert(tag, held + 1);
        Ok(Ok(seq))
    }

    /// Mailbox entries the relay tagged `tag` holds here.
    fn held_for(&mut self, tag: &[u8; 16]) -> Result<u64, StoreError> {
        if let Some(held) = self.dirty_holds.get(tag) {
            return Ok(*held);
        }
        Ok(self
            .relay_holds
            .get(tag)?
            .map(|held| held.value())
            .unwrap_or(0))
    }

    /// Queues an envelope for a user homed elsewhere, if the outbox and its sender's share of
    /// it have room. Every recipient gets its own entry; the bytes are stored once per
    /// envelope.
    pub(super) fn queue_outbox(
        &mut self,
        item: &NewEnvelope,
    ) -> Result<Result<u64, NoRoom>, StoreError> {
        if let Some(refusal) = self.outbox_room(&item.sender, 1)? {
            return Ok(Err(refusal));
        }
        self.insert_outbox(item).map(Ok)
    }

    /// Why `entries` more outbox entries from `sender` do not fit, if they do not.
    pub(super) fn outbox_room(
        &mut self,
        sender: &UserId,
        entries: u64,
    ) -> Result<Option<NoRoom>, StoreError> {
        let limits = &self.config.limits;
        if self.state.outbox_len.saturating_add(entries) > limits.outbox_max_envelopes {
            return Ok(Some(NoRoom::Outbox));
        }
        let share = limits.outbox_max_per_user;
        if self.outbox_held_by(sender)?.saturating_add(entries) > share {
            return Ok(Some(NoRoom::SenderShare));
        }
        Ok(None)
    }

    /// Outbox entries `sender`'s envelopes hold.
    fn outbox_held_by(&mut self, sender: &UserId) -> Result<u64, StoreError> {
        if let Some(held) = self.dirty_senders.get(sender) {
            return Ok(*held);
        }
        let held = self
            .outbox_senders
            .get(sender.as_bytes())?
            .map(|held| held.value())
            .unwrap_or(0);
        Ok(held)
    }

    /// Adds an outbox entry (room was checked with [`Tables::outbox_room`]).
    pub(super) fn insert_outbox(&mut self, item: &NewEnvelope) -> Result<u64, StoreError> {
        let id = item.id.as_bytes();
        let refs = self
            .outbox_refs
            .get(id)?
            .map(|refs| refs.value())
            .unwrap_or(0);
        if refs == 0 {
            self.outbox_body.insert(id, item.bytes.as_ref())?;
        }
        self.outbox_refs.insert(id, refs + 1)?;
        self.state.outbox_seq += 1;
        let seq = self.state.outbox_seq;
        let meta = OutboxMeta {
            sender: item.sender,
            recipient: item.recipient,
            id: item.id,
            accepted_at_ms: self.now_ms,
        };
        self.outbox_meta.insert(seq, &meta.to_bytes())?;
        self.reference_media(&named_blobs(&item.bytes))?;
        self.state.outbox_len += 1;
        let held = self.outbox_held_by(&item.sender)?;
        self.dirty_senders.insert(item.sender, held + 1);
        self.effects.outbox_grew = true;
        Ok(seq)
    }

    pub fn ack(&mut self, device: &DeviceId, up_to: u64) -> Result<(), StoreError> {
        let mut cursor = self.cursor(device)?;
        let up_to = up_to.min(cursor.head);
        if up_to <= cursor.acked {
            return Ok(());
        }
        let start = tables::mailbox_key(device, cursor.acked + 1);
        let end = tables::mailbox_key(device, up_to);
        let mut blobs = Vec::new();
        let mut freed = 0u64;
        let mut media = Vec::new();
        self.mailbox
            .retain_in::<&[u8; 40], _>(&start..=&end, |_, value| {
                match tables::parse_blob_ref(value) {
                    Some(id) => blobs.push(id),
                    None => {
                        freed += value.len() as u64;
                        media.extend(named_blobs(value));
                    }
                }
                false
            })?;
        for id in blobs {
            if let Some(envelope) = self.blobs.get(&id)? {
                media.extend(named_blobs(envelope.value()));
            }
            freed += self.release_blob(&id)?;
        }
        self.release_media(&media)?;
        let held = self.mailbox_size(device)?;
        self.dirty_bytes.insert(*device, held.saturating_sub(freed));
        let mut origins = Vec::new();
        self.mailbox_origins
            .retain_in::<&[u8; 40], _>(&start..=&end, |_, tag| {
                origins.push(*tag);
                false
            })?;
        for tag in origins {
            let held = self.held_for(&tag)?;
            self.dirty_holds.insert(tag, held.saturating_sub(1));
        }
        cursor.acked = up_to;
        self.dirty_cursors.insert(*device, cursor);
        Ok(())
    }

    /// Bytes of the envelopes waiting in `device`'s mailbox.
    fn mailbox_size(&self, device: &DeviceId) -> Result<u64, StoreError> {
        if let Some(bytes) = self.dirty_bytes.get(device) {
            return Ok(*bytes);
        }
        Ok(self
            .mailbox_bytes
            .get(device.as_bytes())?
            .map(|bytes| bytes.value())
            .unwrap_or(0))
    }

    /// Drops one mailbox reference to a blob, deleting it with the last one; the blob's size.
    fn release_blob(&mut self, id: &[u8; 16]) -> Result<u64, StoreError> {
        let size = self
            .blobs
            .get(id)?
            .map(|blob| blob.value().len() as u64)
            .unwrap_or(0);
        let refs = self
            .blob_refs
            .get(id)?
            .map(|refs| refs.value())
            .unwrap_or(0);
        if refs <= 1 {
            self.blob_refs.remove(id)?;
            self.blobs.remove(id)?;
        } else {
            self.blob_refs.insert(id, refs - 1)?;
        }
        Ok(size)
    }

    /// The bytes of outbox entry `seq`'s envelope.
    fn outbox_body_of(&self, meta: &OutboxMeta) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .outbox_body
            .get(meta.id.as_bytes())?
            .map(|body| Bytes::copy_from_slice(body.value())))
    }

    fn remove_outbox(&mut self, seq: u64) -> Result<Option<OutboxMeta>, StoreError> {
        let Some(meta) = self
            .outbox_meta
            .remove(seq)?
            .map(|meta| OutboxMeta::from_bytes(meta.value()))
        else {
            return Ok(None);
        };
        let id = meta.id.as_bytes();
        let media = match self.outbox_body.get(id)? {
            Some(body) => named_blobs(body.value()),
            None => Vec::new(),
        };
        self.release_media(&media)?;
        let refs = self
            .outbox_refs
            .get(id)?
            .map(|refs| refs.value())
            .unwrap_or(0);
        if refs <= 1 {
            self.outbox_refs.remove(id)?;
            self.outbox_body.remove(id)?;
        } else {
            self.outbox_refs.insert(id, refs - 1)?;
        }
        self.state.outbox_len = self.state.outbox_len.saturating_sub(1);
        let held = self.outbox_held_by(&meta.sender)?;
        self.dirty_senders
            .insert(meta.sender, held.saturating_sub(1));
        Ok(Some(meta))
    }

    /// Forgets outbox entries the remote relay has committed.
    pub fn outbox_done(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        self.effects.forwarded += seqs.len();
        for seq in seqs {
            self.remove_outbox(*seq)?;
        }
        Ok(())
    }

    /// Moves outbox entries whose recipient now lives here into their mailbox.
    pub fn outbox_to_mailbox(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        for seq in seqs {
            let Some(meta) = self
                .outbox_meta
                .get(*seq)?
                .map(|meta| OutboxMeta::from_bytes(meta.value()))
            else {
                continue;
            };
            let Some(body) = self.outbox_body_of(&meta)? else {
                continue;
            };
            if !self.is_local(&meta.recipient)? {
                continue;
            }
            let devices = self.devices_for(&meta.recipient, &body)?;
            let mut stored = false;
            for device in devices {
                stored |= self.push_mailbox(&device, &body, &body)?.is_some();
            }
            if stored {
                self.remove_outbox(*seq)?;
            }
        }
        Ok(())
    }

    /// The devices of local `user` an envelope's bytes are for: the one a direct envelope
    /// names (if registered here), or every registered device.
    fn devices_for(&self, user: &UserId, bytes: &[u8]) -> Result<Vec<DeviceId>, StoreError> {
        let named = RawEnvelope::from_bytes(bytes.to_vec())
            .decode_unverified()
            .ok()
            .and_then(|envelope| match envelope.recipient {
                Recipient::Direct(address) if address.user == *user => Some(address.device),
                _ => None,
            });
        match named {
            Some(device) if self.device_owner(&device)? == Some(*user) => Ok(vec![device]),
            Some(_) => Ok(Vec::new()),
            None => self.devices_of(user),
        }
    }

    /// Gives up on an outbox entry and tells its (local) sender why, through their mailbox.
    pub fn bounce(&mut self, seq: u64, reason: &ErrorAnswer) -> Result<(), StoreError> {
        let Some(meta) = self.remove_outbox(seq)? else {
            return Ok(());
        };
        self.notify_sender(&meta.sender, meta.id, meta.recipient, reason.clone())
    }

    /// Puts a bounce in a (local) sender's mailbox: what they sent to `to` failed.
    pub(super) fn notify_sender(
        &mut self,
        sender: &UserId,
        id: EnvelopeId,
        to: UserId,
        reason: ErrorAnswer,
    ) -> Result<(), StoreError> {
        if !self.is_local(sender)? {
            tracing::warn!(%id, "dropping a bounce for a sender who is not homed here");
            return Ok(());
        }
        let notice = MailboxItem::Bounce(Bounce { id, to, reason });
        let bytes = Bytes::from(notice.to_stored());
        // The outbox does not keep the sending device: every device of the sender hears it.
        for device in self.devices_of(sender)? {
            if self.push_mailbox(&device, &bytes, &bytes)?.is_none() {
                tracing::warn!(%id, "sender's mailbox is full; bounce not stored");
            }
        }
        Ok(())
    }

    /// Appends `bytes` to each of `devices`' mailboxes: accepted if one took it.
    fn push_to_devices(
        &mut self,
        devices: &[DeviceId],
        bytes: &Bytes,
    ) -> Result<StoreOutcome, StoreError> {
        let mut outcome = StoreOutcome::UnknownDevice;
        for device in devices {
            match self.push_mailbox(device, bytes, bytes)? {
                Some(seq) => outcome = StoreOutcome::Accepted { seq },
                None if outcome == StoreOutcome::UnknownDevice => {
                    outcome = StoreOutcome::MailboxFull;
                }
                None => {}
            }
        }
        Ok(outcome)
    }

    /// Stores what a user's previous home relay handed on, deduping envelopes by id: a
    /// direct envelope for the device it names, anything else for every device of the user.
    pub fn handoff_in(
        &mut self,
        user: &UserId,
        items: &[HandoffItem],
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        if !self.is_local(user)? {
            return Ok(vec![StoreOutcome::NotHere; items.len()]);
        }
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let outcome = match item {
                HandoffItem::Envelope(envelope) => {
                    if let Some(earlier) = self.seen(envelope)? {
                        earlier
                    } else {
                        let devices = self.devices_for(user, &envelope.bytes)?;
                        let outcome = self.push_to_devices(&devices, &envelope.bytes)?;
                        if matches!(outcome, StoreOutcome::Accepted { .. }) {
                            self.mark_seen(envelope)?;
                        }
                        outcome
                    }
                }
                HandoffItem::Bounce(bytes) => {
                    let devices = self.devices_of(user)?;
                    self.push_to_devices(&devices, bytes)?
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}
