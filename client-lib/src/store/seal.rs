//! Sealing: outbox entries and group key shares become signed envelopes, exactly once.

use redb::{ReadableTable, WriteTransaction};
use tidings_keys::{GroupOutbound, Identity};
use tidings_protocol::{
    Address, DeviceId, Envelope, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient, UserId,
    content::{GroupSealed, Payload},
    now_ms,
};

use super::{
    ClientStore, StoreError,
    crypto::{CryptoState, olm_seal},
    decode, encode,
    tables::{Conversation, GROUP_OUTBOUND, OUTBOX, OutboundGroup, OutboxContent, OutboxEntry},
};

impl ClientStore {
    /// Encrypts and signs outbox entry `seq` (once: a sealed entry keeps its bytes) and
    /// returns the envelope to send. A direct entry needs the recipient's `device`; a group
    /// message needs this device's sending session for the group (see `plan_group_key`).
    pub fn seal(
        &self,
        identity: &Identity,
        seq: u64,
        device: Option<DeviceId>,
    ) -> Result<RawEnvelope, StoreError> {
        let mut sealed = self.seal_many(identity, &[(seq, device)])?;
        sealed
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("outbox entry {seq}")))
    }

    /// Seals several outbox entries (as [`ClientStore::seal`]) in one transaction, in order.
    pub fn seal_many(
        &self,
        identity: &Identity,
        entries: &[(u64, Option<DeviceId>)],
    ) -> Result<Vec<RawEnvelope>, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let mut out = Vec::with_capacity(entries.len());
            for &(seq, device) in entries {
                out.push(seal_entry(txn, &mut state, identity, seq, device)?);
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
        devices: &[(UserId, DeviceId)],
    ) -> Result<Vec<(UserId, RawEnvelope)>, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let mut out = Vec::with_capacity(devices.len());
            for (user, device) in devices {
                let payload = Payload::GroupKey {
                    group,
                    session_key: session_key.to_vec(),
                };
                let to = Address {
                    user: *user,
                    device: *device,
                };
                let sealed = olm_seal(
                    txn,
                    &mut state,
                    EnvelopeId::random(),
                    to,
                    Kind::KeyShare,
                    payload,
                )?;
                out.push((*user, sealed));
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
    identity.sign_envelope(&Envelope {
        id,
        sender: identity.address(),
        recipient,
        sent_at_ms: now_ms(),
        kind,
        body,
    })
}

/// Encrypts a group payload with this device's sending session for the group.
fn megolm_seal(
    txn: &redb::WriteTransaction,
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

/// Seals one outbox entry inside `txn` (see [`ClientStore::seal`]).
fn seal_entry(
    txn: &WriteTransaction,
    state: &mut CryptoState<'_>,
    identity: &Identity,
    seq: u64,
    device: Option<DeviceId>,
) -> Result<RawEnvelope, StoreError> {
    let entry: OutboxEntry = match txn.open_table(OUTBOX)?.get(seq)? {
        Some(bytes) => decode("outbox", bytes.value())?,
        None => return Err(StoreError::NotFound(format!("outbox entry {seq}"))),
    };
    if let Some(sealed) = entry.sealed {
        return Ok(sealed);
    }
    let sealed = match (entry.to, entry.content) {
        (Conversation::Direct(user), OutboxContent::Encrypted(payload)) => {
            let device = device
                .ok_or_else(|| StoreError::NotFound(format!("a device of {user} to encrypt to")))?;
            let to = Address { user, device };
            olm_seal(txn, state, entry.id, to, entry.kind, payload)?
        }
        (Conversation::Group(group), OutboxContent::Encrypted(payload)) => {
            let body = megolm_seal(txn, identity, group, entry.id, payload)?;
            sign(
                identity,
                entry.id,
                Recipient::Group(group),
                entry.kind,
                body,
            )
        }
        (Conversation::Group(group), OutboxContent::Plain(body)) => sign(
            identity,
            entry.id,
            Recipient::Group(group),
            entry.kind,
            body,
        ),
        (Conversation::Direct(_), OutboxContent::Plain(_)) => {
            return Err(StoreError::corrupt("outbox", "a plain entry for a user"));
        }
    };
    ClientStore::save_sealed(txn, seq, sealed)
}
