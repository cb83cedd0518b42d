//! One Olm session (double ratchet) with one peer device, and its pickle.

use std::fmt;

use tidings_protocol::content::{OlmBody, SenderKeys};
use vodozemac::{
    base64_decode, base64_encode,
    olm::{OlmMessage, PreKeyMessage, Session, SessionPickle},
};

use super::{NORMAL_MESSAGE, OlmError, PRE_KEY_MESSAGE, check_pickle_len};
use crate::store_key::StoreKey;

/// Separates the peer's identity key from the vodozemac pickle in [`OlmSession::pickle`].
const PICKLE_SEPARATOR: char = '|';

/// One Olm session with one peer device, and that device's curve25519 identity key.
pub struct OlmSession {
    session: Session,
    peer_identity_key: [u8; 32],
}

impl OlmSession {
    pub(super) fn new(session: Session, peer_identity_key: [u8; 32]) -> Self {
        Self {
            session,
            peer_identity_key,
        }
    }

    /// The session's globally unique id (base64 of a hash of the keys that opened it).
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// The peer device's curve25519 identity key.
    pub fn peer_identity_key(&self) -> [u8; 32] {
        self.peer_identity_key
    }

    /// Encrypts; the returned body carries `sender_keys` only when the message is a pre-key
    /// message (until the peer has answered on this session).
    pub fn encrypt(
        &mut self,
        plaintext: &[u8],
        sender_keys: &SenderKeys,
    ) -> Result<OlmBody, OlmError> {
        let message = self
            .session
            .encrypt(plaintext)
            .map_err(OlmError::Encryption)?;
        let pre_key = matches!(message, OlmMessage::PreKey(_));
        let (_, ciphertext) = message.to_parts();
        Ok(OlmBody {
            message_type: if pre_key {
                PRE_KEY_MESSAGE
            } else {
                NORMAL_MESSAGE
            },
            ciphertext,
            sender_keys: pre_key.then(|| sender_keys.clone()),
        })
    }

    /// Decrypts a message of this session.
    pub fn decrypt(&mut self, body: &OlmBody) -> Result<Vec<u8>, OlmError> {
        let message = parse(body)?;
        self.decrypt_message(&message)
    }

    pub(super) fn decrypt_message(&mut self, message: &OlmMessage) -> Result<Vec<u8>, OlmError> {
        self.session.decrypt(message).map_err(OlmError::Decryption)
    }

    /// Whether `message` was sent on this session (same identity, base and one-time keys).
    pub(super) fn matches(&self, message: &PreKeyMessage) -> bool {
        self.session.session_keys() == message.session_keys()
    }

    /// The session, encrypted under `key`: the peer's identity key in base64 (public, stored
    /// in clear), `|`, then vodozemac's encrypted pickle of the ratchet state.
    pub fn pickle(&self, key: &StoreKey) -> String {
        let mut pickle = base64_encode(self.peer_identity_key);
        pickle.push(PICKLE_SEPARATOR);
        pickle.push_str(&self.session.pickle().encrypt(key.secret()));
        pickle
    }

    /// Restores a session from [`OlmSession::pickle`]'s output.
    pub fn unpickle(pickle: &str, key: &StoreKey) -> Result<Self, OlmError> {
        check_pickle_len(pickle)?;
        let (peer, session) = pickle
            .split_once(PICKLE_SEPARATOR)
            .ok_or(OlmError::MalformedPickle("no peer identity key"))?;
        let peer = base64_decode(peer)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(OlmError::MalformedPickle("bad peer identity key"))?;
        let session =
            SessionPickle::from_encrypted(session, key.secret()).map_err(OlmError::Pickle)?;
        Ok(Self::new(Session::from_pickle(session), peer))
    }
}

/// Decodes the Olm message in a body, checking its type.
pub(super) fn parse(body: &OlmBody) -> Result<OlmMessage, OlmError> {
    let message_type = match body.message_type {
        PRE_KEY_MESSAGE | NORMAL_MESSAGE => usize::from(body.message_type),
        other => return Err(OlmError::UnknownMessageType(other)),
    };
    OlmMessage::from_parts(message_type, &body.ciphertext).map_err(OlmError::MalformedMessage)
}

impl fmt::Debug for OlmSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OlmSession")
            .field("session_id", &self.session_id())
            .field("peer_identity_key", &base64_encode(self.peer_identity_key))
            .finish_non_exhaustive()
    }
}
