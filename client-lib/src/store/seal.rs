//! Sealing: outbox entries and group key shares become signed envelopes, exactly once.

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_keys::{GroupOutbound, Identity};
use tidings_protocol::{
    Address, BlobRef, BoundedVec, Envelope, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient,
    UserId,
    blob::MAX_BLOBS_PER_ENVELOPE,
    content::{GroupSealed, Payload},
    now_ms,
};

use super::{
    ClientStore, StoreError,
    crypto::{CryptoState, blobs_of, olm_seal},
    decode, encode,
    tables::{
        Conversation, GROUP_OUTBOUND, OUTBOX, OutboundGroup, OutboxContent, OutboxEntry, SealedCopy,
    },
};

impl ClientStore {
    /// Encrypts and signs outbox entry `seq` (once: a sealed entry keeps its bytes) and
    /// returns the envelopes to send. An entry for a user is sealed once for each of
    /// `devices` (theirs, and our own other devices, which get a copy); a group message needs
    /// this device's sending session for the group (see `plan_group_key`).
    pub fn seal(
        &self,
        identity: &Identity,
        seq: u64,
        devices: Vec<Address>,
    ) -> Result<Vec<SealedCopy>, StoreError> {
        let mut sealed = self.seal_many(identity, &[(seq, devices)])?;
        sealed
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("outbox entry {seq}")))
    }

    /// Seals several outbox entries (as [`ClientStore::seal`]) in one transaction, in order.
    pub fn seal_many(
        &self,
        identity: &Identity,
        entries: &[(u64, Vec<Address>)],
    ) -> Result<Vec<Vec<SealedCopy>>, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let mut out = Vec::with_capacity(entries.len());
            for (seq, devices) in entries {
                out.push(seal_entry(txn, &mut state, identity, *seq, devices)?);
            }
            state.save(txn)?;
            Ok(out)
        })
    }

    /// Seals the key of a group session for each of `devices` (Olm), for sending now; these
    /// are not kept in the outbox (a lost one is simply sent again).
    pub fn seal_key_shares(
        &self,
        identity: &Identity,
        group: GroupId,
        session_key: &[u8],
        devices: &[Address],
    ) -> Result<Vec<(Address, RawEnvelope)>, StoreError> {
        self.seal_now(identity, devices, Kind::KeyShare, || Payload::GroupKey {
            group,
            session_key: session_key.to_vec(),
        })
    }

    /// Seals `payload()` over Olm for each of `devices` (one transaction), for sending now:
    /// nothing is kept in the outbox (a lost one is simply sent again).
    pub(crate) fn seal_now(
        &self,
        identity: &Identity,
        devices: &[Address],
        kind: Kind,
        payload: impl Fn() -> Payload,
    ) -> Result<Vec<(Address, RawEnvelope)>, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let mut out = Vec::with_capacity(devices.len());
            for to in devices {
                let id = EnvelopeId::new();
                out.push((
                    *to,
                    olm_seal(txn, &mut state, id, id, *to, kind, payload())?,
                ));
            }
            state.save(txn)?;
            Ok(out)
        })
    }
}

/// Signs an envelope of this device.
pub(crate) fn sign(
    identity: &Identity,
    id: EnvelopeId,
    recipient: Recipient,
    kind: Kind,
    body: Vec<u8>,
) -> RawEnvelope {
    sign_naming(identity, id, recipient, kind, body, Default::default())
}

/// Signs an envelope of this device whose header names the media `blobs` its content
/// refers to (so relays keep them while it is stored).
fn sign_naming(
    identity: &Identity,
    id: EnvelopeId,
    recipient: Recipient,
    kind: Kind,
    body: Vec<u8>,
    blobs: BoundedVec<BlobRef, MAX_BLOBS_PER_ENVELOPE>,
) -> RawEnvelope {
    identity.sign_envelope(&Envelope {
        id,
        sender: identity.address(),
        recipient,
        sent_at_ms: now_ms(),
        kind,
        body,
        blobs,
    })
}

/// Encrypts a group payload with this device's sending session for the group.
fn megolm_seal(
    txn: &WriteTxn<'_>,
    identity: &Identity,
    group: GroupId,
    id: EnvelopeId,
    payload: Payload,
) -> Result<Vec<u8>, StoreError> {
    let mut table = txn.open_table(GROUP_OUTBOUND)?;
    let Some(mut state) = table
        .get(group.as_bytes())?
        .map(|bytes| decode::<OutboundGroup>("group_outbound", bytes.value()))
        .transpose()?
    else {
        return Err(StoreError::NotFound(format!(
            "a sending session for group {group}"
        )));
    };
    let mut outbound = GroupOutbound::unpickle(&state.pickle, identity.store_key())
        .map_err(|error| StoreError::corrupt("group_outbound", error))?;
    let plaintext = GroupSealed {
        id,
        from: identity.address(),
        group,
        payload,
    };
    let body = outbound.encrypt(&plaintext.encode());
    state.pickle = outbound.pickle(identity.store_key());
    table.insert(group.as_bytes(), encode(&state).as_slice())?;
    Ok(body.encode())
}

/// What a copy for one of our own other devices carries: a text becomes "sent by me to
/// `peer`"; everything else (sync payloads to ourselves) goes as it is.
fn own_copy(peer: UserId, me: UserId, payload: &Payload) -> Payload {
    match payload {
        Payload::Text { text } if peer != me => Payload::SentText {
            to: peer,
            text: text.clone(),
        },
        Payload::Media { media } if peer != me => Payload::SentMedia {
            to: peer,
            media: media.clone(),
        },
        other => other.clone(),
    }
}

/// Seals one outbox entry inside `txn` (see [`ClientStore::seal`]).
fn seal_entry(
    txn: &WriteTxn<'_>,
    state: &mut CryptoState<'_>,
    identity: &Identity,
    seq: u64,
    devices: &[Address],
) -> Result<Vec<SealedCopy>, StoreError> {
    let entry: OutboxEntry = match txn.open_table(OUTBOX)?.get(seq)? {
        Some(bytes) => txn
            .at_rest
            .open_record("outbox", &seq.to_be_bytes(), bytes.value())?,
        None => return Err(StoreError::NotFound(format!("outbox entry {seq}"))),
    };
    if !entry.sealed.is_empty() {
        return Ok(entry.sealed);
    }
    let blobs = match &entry.content {
        OutboxContent::Encrypted(payload) => blobs_of(payload),
        OutboxContent::Plain(_) => BoundedVec::default(),
    };
    let group_copy = |group: GroupId, body: Vec<u8>| SealedCopy {
        to: Recipient::Group(group),
        envelope: sign_naming(
            identity,
            entry.id,
            Recipient::Group(group),
            entry.kind,
            body,
            blobs.clone(),
        ),
    };
    let sealed = match (entry.to, entry.content) {
        (Conversation::Direct(user), OutboxContent::Encrypted(payload)) => {
            if devices.is_empty() {
                return Err(StoreError::NotFound(format!(
                    "a device of {user} to encrypt to"
                )));
            }
            let me = identity.user_id();
            let mut copies = Vec::with_capacity(devices.len());
            for (index, to) in devices.iter().enumerate() {
                let payload = if to.user == me {
                    own_copy(user, me, &payload)
                } else {
                    payload.clone()
                };
                // The first copy travels under the message id itself (all there is with a
                // one-device peer); the others under ids of their own.
                let id = if index == 0 {
                    entry.id
                } else {
                    EnvelopeId::new()
                };
                let envelope = olm_seal(txn, state, id, entry.id, *to, entry.kind, payload)?;
                copies.push(SealedCopy {
                    to: Recipient::Direct(*to),
                    envelope,
                });
            }
            copies
        }
        (Conversation::Group(group), OutboxContent::Encrypted(payload)) => {
            let body = megolm_seal(txn, identity, group, entry.id, payload)?;
            vec![group_copy(group, body)]
        }
        (Conversation::Group(group), OutboxContent::Plain(body)) => vec![group_copy(group, body)],
        (Conversation::Direct(_), OutboxContent::Plain(_)) => {
            return Err(StoreError::corrupt("outbox", "a plain entry for a user"));
        }
    };
    ClientStore::save_sealed(txn, seq, sealed)
}
