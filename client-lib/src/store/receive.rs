//! Receiving: a pushed batch is decrypted, checked and recorded in one transaction.

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_keys::Identity;
use tidings_protocol::{
    Bounce, Envelope, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient, UserId,
    content::{GroupHeld, Payload, ReceiptStatus, Sealed},
    group::SignedDescriptor,
    media::MediaMessage,
    now_ms,
};

use super::{
    ClientStore, StoreError,
    crypto::{CryptoState, OpenError, olm_open},
    descriptors, device_lists,
    groups::{self, Opened},
    held, history, history_sync, outbox, profiles, receipts, sync,
    tables::{Direction, HELD, MessageRecord, MessageStatus, RECEIVED, received_key},
};
use crate::events::Event;

/// What processing a batch of envelopes produced.
#[derive(Debug, Default)]
pub struct Received {
    /// What happened, in order.
    pub events: Vec<Event>,
    /// Groups another device of ours is in that this one lacks (or holds an older version
    /// of): fetch their descriptor chains from the relay.
    pub groups_behind: Vec<GroupHeld>,
    /// Users (ourselves included) who said their device list changed past the one held:
    /// ask for it again before encrypting to them next.
    pub lists_changed: Vec<UserId>,
    /// Users whose device list could not be fetched who sent from a device their held list
    /// does not name: envelopes of theirs are held back (after a receive, those held by it;
    /// after settling held envelopes, everyone's still held). Ask for their lists again.
    pub held_back: Vec<UserId>,
}

/// Work of one receive transaction.
pub(super) struct Batch<'a> {
    txn: &'a WriteTxn<'a>,
    state: CryptoState<'a>,
    received: Received,
    /// Delivered receipts to send, per author.
    delivered: Vec<(UserId, Vec<EnvelopeId>)>,
    /// Users whose device list could not be fetched for this batch: an envelope from a
    /// device their held list does not name is held back, not failed.
    unreachable: &'a [UserId],
}

impl ClientStore {
    /// Decrypts and records a batch of verified envelopes and bounces, queueing delivered
    /// receipts, all in one transaction: after it commits the batch may be acked.
    pub fn receive(
        &self,
        identity: &Identity,
        envelopes: &[(Envelope, RawEnvelope)],
        bounces: &[Bounce],
    ) -> Result<Received, StoreError> {
        self.receive_holding(identity, envelopes, bounces, &[])
    }

    /// As [`ClientStore::receive`], but a direct envelope from a device its account's held
    /// list does not name is held back (within [`held::HELD_PER_USER`] and
    /// [`held::HELD_TOTAL`]) when the account is one of `unreachable`, whose lists could not
    /// be fetched for this batch; [`ClientStore::settle_held`] takes it up later.
    pub fn receive_holding(
        &self,
        identity: &Identity,
        envelopes: &[(Envelope, RawEnvelope)],
        bounces: &[Bounce],
        unreachable: &[UserId],
    ) -> Result<Received, StoreError> {
        self.write(|txn| {
            let mut batch = Batch::new(txn, identity, unreachable);
            for bounce in bounces {
                let reason = format!("not delivered: {}", bounce.reason);
                match history::find(txn, &bounce.id)? {
                    Some((_, record)) if record.group.is_some() => {
                        let failed = MessageStatus::Failed(reason);
                        let event = groups::record_receipt(txn, &record, &bounce.to, &failed)?;
                        batch.received.events.extend(event);
                    }
                    _ => {
                        if let Some(record) = history::fail(txn, &bounce.to, &bounce.id, reason)? {
                            batch.status(record);
                        }
                    }
                }
            }
            for (envelope, raw) in envelopes {
                let key = received_key(&envelope.sender.user, &envelope.id);
                if txn.open_table(RECEIVED)?.get(&key)?.is_some() {
                    continue;
                }
                txn.open_table(RECEIVED)?.insert(&key, now_ms())?;
                batch.take(envelope, raw)?;
            }
            batch.finish()
        })
    }

    /// Settles held-back envelopes in one transaction: those of `fresh` (users whose list
    /// was just fetched) go through the receive path again, delivered if the list now names
    /// their device and failed if not; those held longer than [`held::HELD_MAX_AGE`] are failed.
    /// The answer's `held_back` names the users whose envelopes are still held.
    pub fn settle_held(
        &self,
        identity: &Identity,
        fresh: &[UserId],
    ) -> Result<Received, StoreError> {
        self.write(|txn| {
            let taken = held::take(txn, fresh, now_ms())?;
            let mut batch = Batch::new(txn, identity, &[]);
            for held::Taken { expired, envelope } in taken {
                let opened = match envelope.open() {
                    Ok(opened) => opened,
                    Err(error) => {
                        tracing::warn!(%error, "dropping a held-back envelope that does not verify");
                        continue;
                    }
                };
                if expired {
                    let reason = format!(
                        "device {} is not on its account's device list, which could not be \
                         fetched for {} days",
                        opened.sender.device,
                        held::HELD_MAX_AGE.as_secs() / 86_400
                    );
                    tracing::info!(from = %opened.sender.user, id = %opened.id, %reason, "failing a held-back envelope");
                    batch.fail(&opened, reason)?;
                } else {
                    batch.replay(&opened, &envelope)?;
                }
            }
            let mut received = batch.finish()?;
            received.held_back = held::held_counts(&txn.open_table(HELD)?)?
                .into_iter()
                .map(|(user, _)| user)
                .collect();
            Ok(received)
        })
    }
}

impl<'a> Batch<'a> {
    pub(super) fn new(
        txn: &'a WriteTxn<'a>,
        identity: &'a Identity,
        unreachable: &'a [UserId],
    ) -> Self {
        Self {
            txn,
            state: CryptoState::new(identity),
            received: Received::default(),
            delivered: Vec::new(),
            unreachable,
        }
    }

    /// Queues the delivered receipts and saves the crypto state; what the batch produced.
    pub(super) fn finish(mut self) -> Result<Received, StoreError> {
        for (author, ids) in std::mem::take(&mut self.delivered) {
            outbox::enqueue_receipts(self.txn, author, ReceiptStatus::Delivered, &ids)?;
        }
        self.state.save(self.txn)?;
        Ok(self.received)
    }

    /// Takes a held-back envelope again, as if it had just arrived (it was deduplicated
    /// then).
    pub(super) fn replay(
        &mut self,
        envelope: &Envelope,
        raw: &RawEnvelope,
    ) -> Result<(), StoreError> {
        self.take(envelope, raw)
    }

    /// Records a direct envelope as failed, with why.
    pub(super) fn fail(&mut self, envelope: &Envelope, reason: String) -> Result<(), StoreError> {
        self.failed(envelope, None, reason)
    }

    /// An envelope from a device the held list does not name while the list cannot be
    /// fetched: held back for later, or failed (why included) if a bound is reached.
    fn hold(
        &mut self,
        envelope: &Envelope,
        raw: &RawEnvelope,
        not_listed: OpenError,
    ) -> Result<(), StoreError> {
        match held::hold(self.txn, envelope, raw)? {
            Ok(()) => {
                let user = envelope.sender.user;
                tracing::info!(from = %user, device = %envelope.sender.device, "holding back an envelope until the sender's device list can be fetched");
                if !self.received.held_back.contains(&user) {
                    self.received.held_back.push(user);
                }
                Ok(())
            }
            Err(full) => {
                tracing::info!(from = %envelope.sender.user, %full, "not holding back an envelope: failing it");
                self.failed(
                    envelope,
                    None,
                    format!("{not_listed} (not held back: {full})"),
                )
            }
        }
    }

    fn status(&mut self, record: MessageRecord) {
        self.received.events.push(receipts::status_event(record));
    }

    fn failed(
        &mut self,
        envelope: &Envelope,
        group: Option<GroupId>,
        reason: String,
    ) -> Result<(), StoreError> {
        let record = MessageRecord {
            id: envelope.id,
            peer: envelope.sender.user,
            group,
            direction: Direction::Incoming,
            text: String::new(),
            sent_at_ms: envelope.sent_at_ms,
            stored_at_ms: now_ms(),
            status: MessageStatus::Failed(format!("could not decrypt: {reason}")),
            media: None,
        };
        history::append(self.txn, &record)?;
        self.received.events.push(Event::Undecryptable {
            from: envelope.sender,
            id: envelope.id,
            reason,
        });
        Ok(())
    }

    fn deliver(&mut self, record: MessageRecord) -> Result<(), StoreError> {
        // A logical message sealed again (new envelope id, same message id) counts once.
        if !history::append_new(self.txn, &record)? {
            return Ok(());
        }
        match self
            .delivered
            .iter_mut()
            .find(|(user, _)| *user == record.peer)
        {
            Some((_, ids)) => ids.push(record.id),
            None => self.delivered.push((record.peer, vec![record.id])),
        }
        self.received.events.push(Event::Message(record));
        Ok(())
    }

    fn take(&mut self, envelope: &Envelope, raw: &RawEnvelope) -> Result<(), StoreError> {
        match (envelope.recipient, envelope.kind) {
            (Recipient::Group(group), Kind::GroupControl) => self.group_change(envelope, group),
            (Recipient::Group(group), _) => self.group_message(envelope, raw, group),
            (Recipient::Direct(_), _) => match olm_open(self.txn, &mut self.state, envelope) {
                Ok(sealed) => self.direct(envelope, sealed),
                Err(reason @ OpenError::NotListed(_))
                    if self.unreachable.contains(&envelope.sender.user) =>
                {
                    self.hold(envelope, raw, reason)
                }
                Err(reason) => self.failed(envelope, None, reason.to_string()),
            },
        }
    }

    fn direct(&mut self, envelope: &Envelope, sealed: Sealed) -> Result<(), StoreError> {
        let peer = envelope.sender.user;
        let message = sealed.message_id();
        let own = peer == self.state.identity.user_id();
        match (envelope.kind, sealed.payload) {
            (Kind::Message, Payload::SentText { to, text }) if own => {
                self.own_copy(envelope, message, to, text, None)
            }
            (Kind::Message, Payload::SentMedia { to, media }) if own => {
                if !named_in_header(envelope, &media) {
                    return self.failed(envelope, None, UNNAMED_BLOB.into());
                }
                let caption = media.caption.clone().unwrap_or_default();
                self.own_copy(envelope, message, to, caption, Some(media))
            }
            (Kind::Receipt, Payload::ReadMarker { chat, up_to }) if own => {
                let events = sync::apply_read_marker(self.txn, chat.into(), &up_to)?;
                self.received.events.extend(events);
                Ok(())
            }
            (Kind::Receipt, Payload::Contact { change }) if own => {
                sync::apply_contact_change(self.txn, change)?;
                self.received.events.push(Event::ContactsSynced);
                Ok(())
            }
            (
                Kind::Receipt,
                Payload::History {
                    messages,
                    done,
                    total,
                },
            ) if own => {
                let event = history_sync::apply_history(self.txn, messages, done, total)?;
                self.received.events.push(event);
                Ok(())
            }
            (Kind::Receipt, Payload::Groups { groups }) if own => {
                let behind = sync::groups_behind(self.txn, &groups)?;
                self.received.groups_behind.extend(behind);
                Ok(())
            }
            (Kind::Receipt, Payload::DevicesChanged { version }) => {
                let held = device_lists::held(self.txn, &peer)?;
                if held.is_none_or(|held| held.list.version < version)
                    && !self.received.lists_changed.contains(&peer)
                {
                    self.received.lists_changed.push(peer);
                    self.received
                        .events
                        .push(Event::DevicesChanged { user: peer });
                }
                Ok(())
            }
            (Kind::Receipt, Payload::StatusMine { status }) if own => {
                super::status::take_own(self.txn, *status)
            }
            (Kind::Message | Kind::Receipt, _) if own => {
                tracing::debug!("ignoring content from our own device that is not a sync");
                Ok(())
            }
            (Kind::Message, Payload::Text { text }) => self.deliver(MessageRecord {
                id: message,
                peer,
                group: None,
                direction: Direction::Incoming,
                text,
                sent_at_ms: envelope.sent_at_ms,
                stored_at_ms: now_ms(),
                status: MessageStatus::Received,
                media: None,
            }),
            (Kind::Message, Payload::Media { media }) => {
                if !named_in_header(envelope, &media) {
                    return self.failed(envelope, None, UNNAMED_BLOB.into());
                }
                self.deliver(MessageRecord {
                    id: message,
                    peer,
                    group: None,
                    direction: Direction::Incoming,
                    text: media.caption.clone().unwrap_or_default(),
                    sent_at_ms: envelope.sent_at_ms,
                    stored_at_ms: now_ms(),
                    status: MessageStatus::Received,
                    media: Some(media),
                })
            }
            (Kind::Receipt, Payload::Receipt { status, ids }) => {
                let events = receipts::apply_receipt(self.txn, &peer, status, &ids)?;
                self.received.events.extend(events);
                Ok(())
            }
            (Kind::Receipt, Payload::ReadUpTo { group, up_to }) => {
                let events = receipts::apply_read_up_to(self.txn, &peer, group, &up_to)?;
                self.received.events.extend(events);
                Ok(())
            }
            (Kind::KeyShare, Payload::GroupKey { group, session_key }) => {
                let key = self.state.identity.store_key();
                match groups::add_inbound(self.txn, key, &group, &peer, &session_key)? {
                    Ok(_) => {
                        // Messages that arrived before their key can be opened now.
                        for raw in groups::take_pending(self.txn, &group, &peer)? {
                            if let Ok(waiting) = raw.open() {
                                self.group_message(&waiting, &raw, group)?;
                            }
                        }
                        Ok(())
                    }
                    Err(reason) => {
                        tracing::warn!(%peer, %reason, "unusable group key");
                        Ok(())
                    }
                }
            }
            (Kind::KeyShare, Payload::ProfileKey { key, version }) => {
                let me = self.state.identity.user_id();
                if let Some(version) = profiles::take_key(self.txn, me, peer, key, version)? {
                    let event = Event::ProfileChanged {
                        user: peer,
                        version,
                    };
                    self.received.events.push(event);
                }
                Ok(())
            }
            (Kind::KeyShare, Payload::StatusKey { session_key }) => {
                let key = self.state.identity.store_key();
                super::status::add_inbound(self.txn, key, &peer, &session_key)
            }
            (Kind::Receipt, Payload::StatusSeen { ids }) => {
                super::status::mark_seen_by(self.txn, &peer, ids.as_slice())
            }
            (kind, _) => {
                tracing::debug!(
                    ?kind,
                    "ignoring content that does not match its envelope kind"
                );
                Ok(())
            }
        }
    }

    /// A copy of a message another device of ours sent: shown as sent by us, once.
    fn own_copy(
        &mut self,
        envelope: &Envelope,
        message: EnvelopeId,
        to: UserId,
        text: String,
        media: Option<Box<MediaMessage>>,
    ) -> Result<(), StoreError> {
        let record = MessageRecord {
            id: message,
            peer: to,
            group: None,
            direction: Direction::Outgoing,
            text,
            sent_at_ms: envelope.sent_at_ms,
            stored_at_ms: now_ms(),
            status: MessageStatus::Sent,
            media,
        };
        if history::append_new(self.txn, &record)? {
            self.received.events.push(Event::Message(record));
        }
        Ok(())
    }

    fn group_message(
        &mut self,
        envelope: &Envelope,
        raw: &RawEnvelope,
        group: GroupId,
    ) -> Result<(), StoreError> {
        let key = self.state.identity.store_key();
        match groups::open_message(self.txn, key, envelope, raw)? {
            Opened::Sealed(sealed) => match sealed.payload {
                Payload::Text { text } if envelope.sender.user == self.state.identity.user_id() => {
                    // Sent by another device of ours: shown as ours, no receipt to ourselves.
                    let record = groups::sent_elsewhere(envelope, group, text);
                    if history::append_new(self.txn, &record)? {
                        self.received.events.push(Event::Message(record));
                    }
                    Ok(())
                }
                Payload::Text { text } => self.deliver(groups::incoming(envelope, group, text)),
                Payload::Media { media } => {
                    if !named_in_header(envelope, &media) {
                        return self.failed(envelope, Some(group), UNNAMED_BLOB.into());
                    }
                    let caption = media.caption.clone().unwrap_or_default();
                    let mut record = if envelope.sender.user == self.state.identity.user_id() {
                        groups::sent_elsewhere(envelope, group, caption)
                    } else {
                        groups::incoming(envelope, group, caption)
                    };
                    record.media = Some(media);
                    if record.direction == Direction::Outgoing {
                        if history::append_new(self.txn, &record)? {
                            self.received.events.push(Event::Message(record));
                        }
                        return Ok(());
                    }
                    self.deliver(record)
                }
                _ => Ok(()),
            },
            Opened::Waiting => Ok(()),
            Opened::Failed(reason) => self.failed(envelope, Some(group), reason),
        }
    }

    fn group_change(&mut self, envelope: &Envelope, group: GroupId) -> Result<(), StoreError> {
        let change = match SignedDescriptor::decode(&envelope.body) {
            Ok(change) if change.descriptor.group == group && change.sent_by(&envelope.sender) => {
                change
            }
            Ok(_) => {
                return self.failed(
                    envelope,
                    Some(group),
                    "a change signed by someone else".into(),
                );
            }
            Err(error) => return self.failed(envelope, Some(group), error.to_string()),
        };
        let before = descriptors::descriptor(self.txn, &group)?;
        match descriptors::accept_change(self.txn, &change)? {
            Ok(()) => {
                let summary = describe(before.as_ref(), &change);
                groups::append_record(
                    self.txn,
                    &groups::change_notice(envelope, &change, summary.clone()),
                )?;
                self.received.events.push(Event::GroupChanged {
                    group,
                    version: change.descriptor.version,
                    summary,
                });
                Ok(())
            }
            Err(error) => {
                tracing::info!(%group, %error, "ignoring a group change");
                Ok(())
            }
        }
    }
}

/// Why a media message whose envelope header does not name its blob is refused: relays
/// count references from the header, so a sender could otherwise make them drop the blob
/// early or keep it forever.
const UNNAMED_BLOB: &str = "the media names a blob its envelope header does not";

/// Whether the envelope's signed header names the blob a media message refers to.
fn named_in_header(envelope: &Envelope, media: &MediaMessage) -> bool {
    envelope.blobs.contains(&media.blob)
}

/// A line saying what a change did, for the history.
fn describe(before: Option<&SignedDescriptor>, after: &SignedDescriptor) -> String {
    let after_d = &after.descriptor;
    let Some(before) = before else {
        return format!(
            "group \"{}\" ({} members)",
            after_d.name,
            after_d.members.len()
        );
    };
    let before_d = &before.descriptor;
    let mut parts = Vec::new();
    if before_d.name != after_d.name {
        parts.push(format!("renamed to \"{}\"", after_d.name));
    }
    let added = after_d
        .members
        .iter()
        .filter(|m| !before_d.is_member(&m.user))
        .count();
    let removed = before_d
        .members
        .iter()
        .filter(|m| !after_d.is_member(&m.user))
        .count();
    let promoted = after_d
        .members
        .iter()
        .filter(|m| before_d.role_of(&m.user).is_some_and(|role| role != m.role))
        .count();
    if added > 0 {
        parts.push(format!("{added} added"));
    }
    if removed > 0 {
        parts.push(format!("{removed} removed"));
    }
    if promoted > 0 {
        parts.push(format!("{promoted} role changes"));
    }
    if parts.is_empty() {
        parts.push("updated".into());
    }
    format!(
        "group changed: {} (version {})",
        parts.join(", "),
        after_d.version
    )
}
