//! Crypto state: the Olm account and per-device sessions, always used inside one transaction.

use std::collections::HashMap;

use redb::{ReadableTable, WriteTransaction};
use tidings_keys::{Identity, OlmAccount, OlmError, PeerSessions};
use tidings_protocol::{
    Address, Bounce, BoundedVec, DeviceId, Envelope, EnvelopeId, KeyBundle, Kind, RawEnvelope,
    Recipient, UserId,
    client::UploadKeys,
    content::{OlmBody, Payload, ReceiptStatus, Sealed, SenderKeys},
    now_ms,
};

use super::{
    ClientStore, StoreError, decode, encode, history, outbox,
    tables::{
        Direction, META, META_KEYS_PUBLISHED, META_OLM_ACCOUNT, MessageRecord, MessageStatus,
        OUTBOX, OutboxEntry, PEER_USERS, RECEIVED, SESSIONS, USER_DEVICES,
    },
};
use crate::events::Event;

/// META key: our sender keys (certificate and signed identity key), cached.
const META_SENDER_KEYS: &str = "sender_keys";

/// What processing a batch of envelopes produced.
#[derive(Debug, Default)]
pub struct Received {
    /// What happened, in order.
    pub events: Vec<Event>,
}

/// The account and sessions touched by one transaction, written back at its end.
struct CryptoState<'a> {
    identity: &'a Identity,
    account: Option<OlmAccount>,
    account_dirty: bool,
    sessions: HashMap<DeviceId, PeerSessions>,
}

impl<'a> CryptoState<'a> {
    fn new(identity: &'a Identity) -> Self {
        Self {
            identity,
            account: None,
            account_dirty: false,
            sessions: HashMap::new(),
        }
    }

    fn account(&mut self, txn: &WriteTransaction) -> Result<&mut OlmAccount, StoreError> {
        if self.account.is_none() {
            let pickle = txn
                .open_table(META)?
                .get(META_OLM_ACCOUNT)?
                .map(|value| value.value().to_vec());
            let account = match pickle {
                Some(pickle) => OlmAccount::unpickle(
                    std::str::from_utf8(&pickle).map_err(|_| StoreError::Corrupt {
                        table: "meta",
                        reason: "account pickle is not text".into(),
                    })?,
                    self.identity.store_key(),
                )?,
                None => {
                    self.account_dirty = true;
                    OlmAccount::new()
                }
            };
            self.account = Some(account);
        }
        self.account
            .as_mut()
            .ok_or_else(|| StoreError::NotFound("olm account".into()))
    }

    fn sessions(
        &mut self,
        txn: &WriteTransaction,
        device: DeviceId,
    ) -> Result<&mut PeerSessions, StoreError> {
        if !self.sessions.contains_key(&device) {
            let loaded = match txn.open_table(SESSIONS)?.get(device.as_bytes())? {
                Some(bytes) => PeerSessions::from_bytes(bytes.value(), self.identity.store_key())?,
                None => PeerSessions::new(),
            };
            self.sessions.insert(device, loaded);
        }
        self.sessions
            .get_mut(&device)
            .ok_or_else(|| StoreError::NotFound("sessions".into()))
    }

    /// Decrypts with the sender device's sessions; the account (loaded once per transaction)
    /// answers pre-key messages and is saved afterwards, since that consumes a one-time key.
    fn decrypt(
        &mut self,
        txn: &WriteTransaction,
        sender: &Address,
        body: &OlmBody,
    ) -> Result<Vec<u8>, StoreError> {
        self.account(txn)?;
        self.sessions(txn, sender.device)?;
        if body.sender_keys.is_some() {
            self.account_dirty = true;
        }
        let (Some(account), Some(sessions)) =
            (self.account.as_mut(), self.sessions.get_mut(&sender.device))
        else {
            return Err(StoreError::NotFound("crypto state".into()));
        };
        Ok(sessions.decrypt(account, sender, body)?)
    }

    fn save(self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if let (Some(account), true) = (&self.account, self.account_dirty) {
            let pickle = account.pickle(self.identity.store_key());
            txn.open_table(META)?
                .insert(META_OLM_ACCOUNT, pickle.as_bytes())?;
        }
        let mut table = txn.open_table(SESSIONS)?;
        for (device, sessions) in &self.sessions {
            table.insert(
                device.as_bytes(),
                sessions.to_bytes(self.identity.store_key()).as_slice(),
            )?;
        }
        Ok(())
    }
}

fn bind_peer(txn: &WriteTransaction, user: &UserId, device: &DeviceId) -> Result<(), StoreError> {
    txn.open_table(PEER_USERS)?
        .insert(device.as_bytes(), user.as_bytes())?;
    txn.open_table(USER_DEVICES)?
        .insert(user.as_bytes(), device.as_bytes())?;
    Ok(())
}

fn sender_keys(txn: &WriteTransaction, state: &mut CryptoState) -> Result<SenderKeys, StoreError> {
    if let Some(bytes) = txn.open_table(META)?.get(META_SENDER_KEYS)? {
        return decode("meta", bytes.value());
    }
    let identity = state.identity;
    let keys = state.account(txn)?.sender_keys(identity);
    txn.open_table(META)?
        .insert(META_SENDER_KEYS, encode(&keys).as_slice())?;
    Ok(keys)
}

impl ClientStore {
    /// Creates the Olm account on first use and returns the keys to publish, or `None` if the
    /// identity key was published before (then only top up one-time keys when low).
    pub fn keys_to_publish(
        &self,
        identity: &Identity,
        one_time_keys: usize,
    ) -> Result<Option<UploadKeys>, StoreError> {
        self.write(|txn| {
            if txn.open_table(META)?.get(META_KEYS_PUBLISHED)?.is_some() {
                return Ok(None);
            }
            let mut state = CryptoState::new(identity);
            let account = state.account(txn)?;
            let upload = UploadKeys {
                identity: Some(account.identity_key(identity)),
                one_time_keys: BoundedVec::new(
                    account.generate_one_time_keys(identity, one_time_keys),
                )
                .map_err(|error| StoreError::Corrupt {
                    table: "meta",
                    reason: error.to_string(),
                })?,
                fallback: Some(account.rotate_fallback_key(identity)),
            };
            state.account_dirty = true;
            state.save(txn)?;
            Ok(Some(upload))
        })
    }

    /// Records that the relay holds our identity key.
    pub fn set_keys_published(&self) -> Result<(), StoreError> {
        self.set_meta(META_KEYS_PUBLISHED, b"1")
    }

    /// Generates `count` more one-time keys to upload.
    pub fn more_one_time_keys(
        &self,
        identity: &Identity,
        count: usize,
    ) -> Result<UploadKeys, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let keys = state.account(txn)?.generate_one_time_keys(identity, count);
            state.account_dirty = true;
            state.save(txn)?;
            Ok(UploadKeys {
                identity: None,
                one_time_keys: BoundedVec::new(keys).map_err(|error| StoreError::Corrupt {
                    table: "meta",
                    reason: error.to_string(),
                })?,
                fallback: None,
            })
        })
    }

    /// The device we talk to for `user`, if a session with it exists.
    pub fn device_for(&self, user: &UserId) -> Result<Option<DeviceId>, StoreError> {
        self.read(|txn| {
            let Some(device) = txn
                .open_table(USER_DEVICES)?
                .get(user.as_bytes())?
                .map(|device| DeviceId::from_bytes(*device.value()))
            else {
                return Ok(None);
            };
            let has_sessions = txn.open_table(SESSIONS)?.get(device.as_bytes())?.is_some();
            Ok(has_sessions.then_some(device))
        })
    }

    /// Opens an Olm session from a claimed bundle (verified against `user` first).
    pub fn install_outbound(
        &self,
        identity: &Identity,
        user: &UserId,
        bundle: &KeyBundle,
    ) -> Result<DeviceId, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let session = state.account(txn)?.create_outbound_session(user, bundle)?;
            let device = bundle.cert.device;
            state.sessions(txn, device)?.add(session);
            bind_peer(txn, user, &device)?;
            state.save(txn)?;
            Ok(device)
        })
    }

    /// Encrypts and signs outbox entry `seq` for `device` (once: a sealed entry keeps its
    /// bytes), returning the envelope to send.
    pub fn seal(
        &self,
        identity: &Identity,
        seq: u64,
        device: DeviceId,
    ) -> Result<RawEnvelope, StoreError> {
        self.write(|txn| {
            let entry: OutboxEntry = match txn.open_table(OUTBOX)?.get(seq)? {
                Some(bytes) => decode("outbox", bytes.value())?,
                None => return Err(StoreError::NotFound(format!("outbox entry {seq}"))),
            };
            if let Some(sealed) = entry.sealed {
                return Ok(sealed);
            }
            let mut state = CryptoState::new(identity);
            let keys = sender_keys(txn, &mut state)?;
            let to = Address {
                user: entry.to,
                device,
            };
            let plaintext = Sealed {
                id: entry.id,
                from: identity.address(),
                to,
                payload: entry.payload,
            };
            let body = state
                .sessions(txn, device)?
                .encrypt(&plaintext.encode(), &keys)
                .ok_or(StoreError::Crypto(OlmError::NoSession))??;
            let envelope = Envelope {
                id: entry.id,
                sender: identity.address(),
                recipient: Recipient::Direct(to),
                sent_at_ms: now_ms(),
                kind: entry.kind,
                body: body.encode(),
            };
            let sealed = envelope.sign(identity.device_key());
            let sealed = ClientStore::save_sealed(txn, seq, sealed)?;
            state.save(txn)?;
            Ok(sealed)
        })
    }

    /// Decrypts and records a batch of verified envelopes, queueing delivered receipts, all in
    /// one transaction: after it commits the batch may be acked to the relay.
    pub fn receive(
        &self,
        identity: &Identity,
        envelopes: &[Envelope],
        bounces: &[Bounce],
    ) -> Result<Received, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let mut received = Received::default();
            for bounce in bounces {
                let reason = format!("not delivered: {}", bounce.reason);
                if let Some(record) = history::fail(txn, &bounce.to, &bounce.id, reason)? {
                    received.events.push(Event::Status {
                        peer: record.peer,
                        id: record.id,
                        status: record.status,
                    });
                }
            }
            let mut delivered: Vec<(UserId, Vec<EnvelopeId>)> = Vec::new();
            for envelope in envelopes {
                if txn
                    .open_table(RECEIVED)?
                    .get(envelope.id.as_bytes())?
                    .is_some()
                {
                    continue;
                }
                txn.open_table(RECEIVED)?
                    .insert(envelope.id.as_bytes(), now_ms())?;
                match open(txn, &mut state, identity, envelope) {
                    Ok(payload) => {
                        apply(txn, envelope, payload, &mut received, &mut delivered)?;
                    }
                    Err(reason) => {
                        history::append(txn, &failed_record(envelope, &reason))?;
                        received.events.push(Event::Undecryptable {
                            from: envelope.sender,
                            id: envelope.id,
                            reason,
                        });
                    }
                }
            }
            for (peer, ids) in delivered {
                outbox::enqueue_receipts(txn, peer, ReceiptStatus::Delivered, &ids)?;
            }
            state.save(txn)?;
            Ok(received)
        })
    }
}

fn failed_record(envelope: &Envelope, reason: &str) -> MessageRecord {
    MessageRecord {
        id: envelope.id,
        peer: envelope.sender.user,
        direction: Direction::Incoming,
        text: String::new(),
        sent_at_ms: envelope.sent_at_ms,
        stored_at_ms: now_ms(),
        status: MessageStatus::Failed(format!("could not decrypt: {reason}")),
    }
}

/// Decrypts one envelope; a `String` error is a reason to record, not a store failure.
fn open(
    txn: &WriteTransaction,
    state: &mut CryptoState,
    identity: &Identity,
    envelope: &Envelope,
) -> Result<Payload, String> {
    if envelope.recipient != Recipient::Direct(identity.address()) {
        return Err("not addressed to this device".into());
    }
    let body = OlmBody::decode(&envelope.body).map_err(|error| error.to_string())?;
    let sender = envelope.sender;
    if body.sender_keys.is_none() {
        // A normal message: the device must be bound to the user who claims to send it.
        let bound = txn
            .open_table(PEER_USERS)
            .and_then(|table| Ok(table.get(sender.device.as_bytes())?.map(|u| *u.value())))
            .map_err(|error| error.to_string())?;
        if bound != Some(*sender.user.as_bytes()) {
            return Err("no session with this sender's device".into());
        }
    }
    let plaintext = state
        .decrypt(txn, &sender, &body)
        .map_err(|error| error.to_string())?;
    let sealed = Sealed::decode(&plaintext).map_err(|error| error.to_string())?;
    if sealed.id != envelope.id || sealed.from != sender || sealed.to != identity.address() {
        return Err("the ciphertext was made for another envelope".into());
    }
    bind_peer(txn, &sender.user, &sender.device).map_err(|error| error.to_string())?;
    Ok(sealed.payload)
}

fn apply(
    txn: &WriteTransaction,
    envelope: &Envelope,
    payload: Payload,
    received: &mut Received,
    delivered: &mut Vec<(UserId, Vec<EnvelopeId>)>,
) -> Result<(), StoreError> {
    let peer = envelope.sender.user;
    match (envelope.kind, payload) {
        (Kind::Message, Payload::Text { text }) => {
            let record = MessageRecord {
                id: envelope.id,
                peer,
                direction: Direction::Incoming,
                text,
                sent_at_ms: envelope.sent_at_ms,
                stored_at_ms: now_ms(),
                status: MessageStatus::Received,
            };
            history::append(txn, &record)?;
            match delivered.iter_mut().find(|(user, _)| *user == peer) {
                Some((_, ids)) => ids.push(envelope.id),
                None => delivered.push((peer, vec![envelope.id])),
            }
            received.events.push(Event::Message(record));
        }
        (Kind::Receipt, Payload::Receipt { status, ids }) => {
            let status = MessageStatus::from_receipt(status);
            for id in ids.iter() {
                if let Some(record) = history::advance(txn, &peer, id, status.clone())? {
                    received.events.push(Event::Status {
                        peer,
                        id: record.id,
                        status: record.status,
                    });
                }
            }
        }
        (kind, _) => {
            tracing::debug!(
                ?kind,
                "ignoring content that does not match its envelope kind"
            );
        }
    }
    Ok(())
}
