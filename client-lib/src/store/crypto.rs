//! Crypto state: the Olm account and per-device sessions, always used inside one transaction.

use std::collections::HashMap;

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_keys::{Identity, OlmAccount, OlmError, PeerSessions, olm::PRE_KEY_MESSAGE};
use tidings_protocol::{
    Address, BlobRef, BoundedVec, DecodeError, DeviceId, Envelope, EnvelopeId, KeyBundle, Kind,
    RawEnvelope, Recipient, UserId,
    blob::MAX_BLOBS_PER_ENVELOPE,
    client::UploadKeys,
    content::{OlmBody, Payload, Sealed, SenderKeys},
    now_ms,
};

use super::{
    ClientStore, StoreError, decode, device_lists, encode,
    tables::{META, META_KEYS_PUBLISHED, META_OLM_ACCOUNT, PEER_USERS, SESSIONS},
};

/// META key: our sender keys (certificate and signed identity key), cached.
const META_SENDER_KEYS: &str = "sender_keys";

/// The account and sessions touched by one transaction, written back at its end.
pub(super) struct CryptoState<'a> {
    pub(super) identity: &'a Identity,
    account: Option<OlmAccount>,
    account_dirty: bool,
    sessions: HashMap<DeviceId, PeerSessions>,
}

impl<'a> CryptoState<'a> {
    pub(super) fn new(identity: &'a Identity) -> Self {
        Self {
            identity,
            account: None,
            account_dirty: false,
            sessions: HashMap::new(),
        }
    }

    fn account(&mut self, txn: &WriteTxn<'_>) -> Result<&mut OlmAccount, StoreError> {
        if self.account.is_none() {
            let pickle = txn
                .open_table(META)?
                .get(META_OLM_ACCOUNT)?
                .map(|value| value.value().to_vec());
            let account = match pickle {
                Some(pickle) => OlmAccount::unpickle(
                    std::str::from_utf8(&pickle)
                        .map_err(|_| StoreError::corrupt("meta", "account pickle is not text"))?,
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
        txn: &WriteTxn<'_>,
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
        txn: &WriteTxn<'_>,
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

    pub(super) fn save(self, txn: &WriteTxn<'_>) -> Result<(), StoreError> {
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

/// The account a peer device was bound to by a verified certificate, if any.
fn bound_user(txn: &WriteTxn<'_>, device: &DeviceId) -> Result<Option<UserId>, StoreError> {
    Ok(txn
        .open_table(PEER_USERS)?
        .get(device.as_bytes())?
        .map(|user| UserId::from_bytes(*user.value())))
}

/// Binds a device to the account whose certificate for it was verified (a claimed bundle or a
/// pre-key message's sender keys). A device never changes account: binding it to another one
/// is refused.
pub(super) fn bind_peer(
    txn: &WriteTxn<'_>,
    user: &UserId,
    device: &DeviceId,
) -> Result<(), StoreError> {
    if let Some(bound) = bound_user(txn, device)?
        && bound != *user
    {
        return Err(StoreError::Conflict(format!(
            "device {device} belongs to {bound}, not {user}"
        )));
    }
    txn.open_table(PEER_USERS)?
        .insert(device.as_bytes(), user.as_bytes())?;
    Ok(())
}

fn sender_keys(txn: &WriteTxn<'_>, state: &mut CryptoState) -> Result<SenderKeys, StoreError> {
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
                .map_err(|error| StoreError::corrupt("meta", error))?,
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
                one_time_keys: BoundedVec::new(keys)
                    .map_err(|error| StoreError::corrupt("meta", error))?,
                fallback: None,
            })
        })
    }

    /// Which of `devices` this device has no Olm session with yet.
    pub fn without_session(&self, devices: &[Address]) -> Result<Vec<Address>, StoreError> {
        self.read(|txn| {
            let sessions = txn.open_table(SESSIONS)?;
            let mut out = Vec::new();
            for device in devices {
                if sessions.get(device.device.as_bytes())?.is_none() {
                    out.push(*device);
                }
            }
            Ok(out)
        })
    }

    /// Opens an Olm session with `device` from a claimed bundle (verified against its user,
    /// and refused if it is another device's).
    pub fn install_outbound(
        &self,
        identity: &Identity,
        device: &Address,
        bundle: &KeyBundle,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            if bundle.cert.device != device.device {
                return Err(StoreError::Conflict(format!(
                    "the relay gave a bundle of device {} when {} was asked for",
                    bundle.cert.device, device.device
                )));
            }
            let mut state = CryptoState::new(identity);
            let session = state
                .account(txn)?
                .create_outbound_session(&device.user, bundle)?;
            state.sessions(txn, device.device)?.add(session);
            bind_peer(txn, &device.user, &device.device)?;
            state.save(txn)
        })
    }
}

/// The blobs a payload refers to, for its envelope's header.
pub(super) fn blobs_of(payload: &Payload) -> BoundedVec<BlobRef, MAX_BLOBS_PER_ENVELOPE> {
    match payload {
        Payload::Media { media } | Payload::SentMedia { media, .. } => {
            BoundedVec::new(vec![media.blob.clone()]).unwrap_or_default()
        }
        _ => BoundedVec::default(),
    }
}

/// Encrypts `payload` for one device over Olm and signs the envelope.
pub(super) fn olm_seal(
    txn: &WriteTxn<'_>,
    state: &mut CryptoState,
    id: EnvelopeId,
    message: EnvelopeId,
    to: Address,
    kind: Kind,
    payload: Payload,
) -> Result<RawEnvelope, StoreError> {
    let identity = state.identity;
    let keys = sender_keys(txn, state)?;
    let blobs = blobs_of(&payload);
    let plaintext = Sealed {
        id,
        from: identity.address(),
        to,
        payload,
        message: (message != id).then_some(message),
    };
    let body = state
        .sessions(txn, to.device)?
        .encrypt(&plaintext.encode(), &keys)
        .ok_or(StoreError::Crypto(OlmError::NoSession))??;
    let envelope = Envelope {
        id,
        sender: identity.address(),
        recipient: Recipient::Direct(to),
        sent_at_ms: now_ms(),
        kind,
        body: body.encode(),
        blobs,
    };
    Ok(identity.sign_envelope(&envelope))
}

/// Why a direct envelope could not be opened: a reason recorded with the message (shown as
/// it always was), not a failure of the store transaction.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    /// It is addressed to another device.
    #[error("not addressed to this device")]
    NotForThisDevice,
    /// The Olm body does not decode.
    #[error("{0}")]
    Body(DecodeError),
    /// The sending device is bound to another account than the sender's.
    #[error("device {device} belongs to {bound}, not to the sender {sender}")]
    WrongAccount {
        /// The sending device.
        device: DeviceId,
        /// The account it is bound to.
        bound: UserId,
        /// The account the envelope names.
        sender: UserId,
    },
    /// The sending device is not on its account's device list (never listed, or removed).
    #[error("device {0} is not on its account's device list")]
    NotListed(DeviceId),
    /// There is no session with the device, and the message cannot open one.
    #[error("no session with this sender's device")]
    NoSession,
    /// Decrypting (or reading the crypto state for it) failed.
    #[error("{0}")]
    Crypto(StoreError),
    /// The plaintext does not decode.
    #[error("{0}")]
    Sealed(DecodeError),
    /// The plaintext was sealed for another envelope.
    #[error("the ciphertext was made for another envelope")]
    OtherEnvelope,
}

/// Decrypts one Olm envelope.
pub(super) fn olm_open(
    txn: &WriteTxn<'_>,
    state: &mut CryptoState,
    envelope: &Envelope,
) -> Result<Sealed, OpenError> {
    let identity = state.identity;
    if envelope.recipient != Recipient::Direct(identity.address()) {
        return Err(OpenError::NotForThisDevice);
    }
    let body = OlmBody::decode(&envelope.body).map_err(OpenError::Body)?;
    let sender = envelope.sender;
    // The account's signed list says which devices are its devices now (a removed device
    // keeps its certificate): the session refreshed it before storing. Only when no list of
    // the account could be had at all (its home relay out of reach) does the certificate
    // binding below decide alone, as it did before lists, so mail is not lost meanwhile.
    // NotListed is answered before anything is decrypted, so a caller that holds the envelope
    // back while the list cannot be fetched (store/held.rs) can open it later unchanged.
    if device_lists::held(txn, &sender.user)
        .map_err(OpenError::Crypto)?
        .is_some_and(|list| !list.contains(&sender.device))
    {
        return Err(OpenError::NotListed(sender.device));
    }
    // The envelope's signature proves the device; only a verified certificate proves its
    // account. A device bound to one account never speaks for another, and a device we never
    // bound must open a session with a pre-key message whose sender keys carry that proof.
    match bound_user(txn, &sender.device).map_err(OpenError::Crypto)? {
        Some(user) if user != sender.user => {
            return Err(OpenError::WrongAccount {
                device: sender.device,
                bound: user,
                sender: sender.user,
            });
        }
        None if body.message_type != PRE_KEY_MESSAGE => return Err(OpenError::NoSession),
        _ => {}
    }
    let plaintext = state
        .decrypt(txn, &sender, &body)
        .map_err(OpenError::Crypto)?;
    let sealed = Sealed::decode(&plaintext).map_err(OpenError::Sealed)?;
    if sealed.id != envelope.id || sealed.from != sender || sealed.to != identity.address() {
        return Err(OpenError::OtherEnvelope);
    }
    bind_peer(txn, &sender.user, &sender.device).map_err(OpenError::Crypto)?;
    Ok(sealed)
}
