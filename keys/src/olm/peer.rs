//! Every Olm session with one peer device: choosing one to send, finding or creating one to receive.

use tidings_protocol::{
    Address, BoundedVec, codec,
    content::{OlmBody, SenderKeys},
};
use vodozemac::olm::{OlmMessage, PreKeyMessage};

use super::{OlmAccount, OlmError, OlmSession, SenderKeysError, session};
use crate::store_key::StoreKey;

/// Most sessions kept with one peer device; the least recently used is dropped beyond it.
pub const MAX_PEER_SESSIONS: usize = 8;

/// Largest [`PeerSessions::to_bytes`] output accepted by [`PeerSessions::from_bytes`].
pub const MAX_PEER_SESSIONS_BYTES: usize = 2 * 1024 * 1024;

/// Every Olm session with one peer device, most recently used first.
#[derive(Debug, Default)]
pub struct PeerSessions {
    sessions: Vec<OlmSession>,
}

impl PeerSessions {
    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is no session with this device (one must be opened from a key bundle).
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Adds a session as the most recently used one, replacing a session with the same id and
    /// dropping the least recently used beyond [`MAX_PEER_SESSIONS`].
    pub fn add(&mut self, session: OlmSession) {
        let id = session.session_id();
        self.sessions.retain(|existing| existing.session_id() != id);
        self.sessions.insert(0, session);
        self.sessions.truncate(MAX_PEER_SESSIONS);
    }

    /// Encrypts with the most recently used session; None if there is none.
    pub fn encrypt(
        &mut self,
        plaintext: &[u8],
        sender_keys: &SenderKeys,
    ) -> Option<Result<OlmBody, OlmError>> {
        self.sessions
            .first_mut()
            .map(|session| session.encrypt(plaintext, sender_keys))
    }

    /// Decrypts a body from `sender` (the authenticated sender address of the envelope).
    ///
    /// A normal message is tried on every session and must not carry sender keys: they prove
    /// who opens a session, and a message on an existing session opens none. A pre-key message
    /// must carry sender keys proving that its identity key belongs to `sender`, whether it
    /// goes to the session it was sent on or opens a new one through `account` (which consumes
    /// the one-time key: persist the account afterwards).
    ///
    /// This only proves which *device* sent the message; the caller must check that the device
    /// belongs to the envelope's sender user (a verified certificate, remembered).
    ///
    /// A replayed message is an error, never a second plaintext, while its session is here:
    /// [`OlmError::Decryption`] (its message key is used up). Once that session is gone, a
    /// replayed pre-key message fails with [`OlmError::UnknownOneTimeKey`] if it was built on a
    /// one-time key; one built on a still-held fallback key opens a new session and yields the
    /// same plaintext again, as in every Olm implementation — dedupe by envelope id.
    pub fn decrypt(
        &mut self,
        account: &mut OlmAccount,
        sender: &Address,
        body: &OlmBody,
    ) -> Result<Vec<u8>, OlmError> {
        let message = session::parse(body)?;
        let pre_key = match &message {
            OlmMessage::Normal(_) if body.sender_keys.is_some() => {
                return Err(OlmError::UnexpectedSenderKeys);
            }
            OlmMessage::Normal(_) => return self.decrypt_normal(&message),
            OlmMessage::PreKey(pre_key) => pre_key,
        };
        let keys = body
            .sender_keys
            .as_ref()
            .ok_or(OlmError::MissingSenderKeys)?;
        verify_sender_keys(keys, sender, pre_key)?;
        if let Some(index) = self
            .sessions
            .iter()
            .position(|session| session.matches(pre_key))
        {
            return self.decrypt_with(index, &message);
        }
        let (session, plaintext) =
            account.create_inbound_session(keys.identity.curve25519, pre_key)?;
        self.add(session);
        Ok(plaintext)
    }

    fn decrypt_normal(&mut self, message: &OlmMessage) -> Result<Vec<u8>, OlmError> {
        if self.sessions.is_empty() {
            return Err(OlmError::NoSession);
        }
        for index in 0..self.sessions.len() {
            if let Ok(plaintext) = self.decrypt_with(index, message) {
                return Ok(plaintext);
            }
        }
        Err(OlmError::NoMatchingSession {
            tried: self.sessions.len(),
        })
    }

    /// Decrypts with the session at `index` and, on success, makes it the most recently used.
    fn decrypt_with(&mut self, index: usize, message: &OlmMessage) -> Result<Vec<u8>, OlmError> {
        let session = self
            .sessions
            .get_mut(index)
            .ok_or(OlmError::NoMatchingSession { tried: 0 })?;
        let plaintext = session.decrypt_message(message)?;
        let session = self.sessions.remove(index);
        self.sessions.insert(0, session);
        Ok(plaintext)
    }

    /// The sessions, most recently used first, as a CBOR list of their encrypted pickles.
    pub fn to_bytes(&self, key: &StoreKey) -> Vec<u8> {
        let pickles: Vec<String> = self
            .sessions
            .iter()
            .map(|session| session.pickle(key))
            .collect();
        codec::encode(&pickles)
    }

    /// Restores the sessions from [`PeerSessions::to_bytes`]'s output, checking every bound.
    pub fn from_bytes(bytes: &[u8], key: &StoreKey) -> Result<Self, OlmError> {
        let pickles: BoundedVec<String, MAX_PEER_SESSIONS> =
            codec::decode(bytes, MAX_PEER_SESSIONS_BYTES)?;
        let sessions = pickles
            .iter()
            .map(|pickle| OlmSession::unpickle(pickle, key))
            .collect::<Result<_, _>>()?;
        Ok(Self { sessions })
    }
}

/// Checks that `keys` prove the pre-key message's identity key belongs to `sender`.
fn verify_sender_keys(
    keys: &SenderKeys,
    sender: &Address,
    message: &PreKeyMessage,
) -> Result<(), SenderKeysError> {
    keys.cert.verify().map_err(SenderKeysError::BadCert)?;
    if keys.cert.address() != *sender {
        return Err(SenderKeysError::WrongAddress);
    }
    keys.identity
        .verify()
        .map_err(SenderKeysError::BadIdentityKey)?;
    if keys.identity.device != sender.device {
        return Err(SenderKeysError::WrongDevice);
    }
    if message.identity_key().to_bytes() != keys.identity.curve25519 {
        return Err(SenderKeysError::IdentityKeyMismatch);
    }
    Ok(())
}
