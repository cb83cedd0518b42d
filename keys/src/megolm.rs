//! Group sessions (Megolm, from vodozemac): one outbound session per sender per group, whose
//! key each member receives over Olm; members decrypt with the matching inbound session.

use tidings_protocol::content::MegolmBody;
use vodozemac::megolm::{
    GroupSession, GroupSessionPickle, InboundGroupSession, InboundGroupSessionPickle,
    MegolmMessage, SessionConfig, SessionKey,
};

use crate::{olm::MAX_PICKLE_LEN, store_key::StoreKey};

const CONFIG: SessionConfig = SessionConfig::version_1();

/// Why a Megolm operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MegolmError {
    /// A session key does not decode.
    #[error("malformed group session key")]
    BadSessionKey,
    /// The message is for another session.
    #[error("message is for another group session")]
    WrongSession,
    /// The message bytes do not decode.
    #[error("malformed group message")]
    Malformed,
    /// The message does not decrypt or its signature does not verify.
    #[error("group message does not decrypt: {0}")]
    Decryption(String),
    /// A stored session does not unpickle.
    #[error("stored group session is unreadable: {0}")]
    Pickle(String),
}

fn check_len(pickle: &str) -> Result<(), MegolmError> {
    if pickle.len() > MAX_PICKLE_LEN {
        return Err(MegolmError::Pickle("too large".into()));
    }
    Ok(())
}

/// This device's sending session for one group.
pub struct GroupOutbound {
    session: GroupSession,
}

impl Default for GroupOutbound {
    fn default() -> Self {
        Self::new()
    }
}

impl GroupOutbound {
    /// A fresh session (a new key: rotate by making a new one).
    pub fn new() -> Self {
        Self {
            session: GroupSession::new(CONFIG),
        }
    }

    /// The session's id.
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// The key members need to decrypt from the current message on (send it over Olm).
    pub fn session_key(&self) -> Vec<u8> {
        self.session.session_key().to_bytes()
    }

    /// How many messages were encrypted so far.
    pub fn message_index(&self) -> u32 {
        self.session.message_index()
    }

    /// Encrypts one group message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> MegolmBody {
        let message = self.session.encrypt(plaintext);
        MegolmBody {
            session_id: self.session.session_id(),
            ciphertext: message.to_bytes(),
        }
    }

    /// The session, encrypted under `key`.
    pub fn pickle(&self, key: &StoreKey) -> String {
        self.session.pickle().encrypt(key.secret())
    }

    /// Restores a session from [`GroupOutbound::pickle`].
    pub fn unpickle(pickle: &str, key: &StoreKey) -> Result<Self, MegolmError> {
        check_len(pickle)?;
        let pickle = GroupSessionPickle::from_encrypted(pickle, key.secret())
            .map_err(|error| MegolmError::Pickle(error.to_string()))?;
        Ok(Self {
            session: GroupSession::from_pickle(pickle),
        })
    }
}

/// Another member's session for one group, as received from them.
pub struct GroupInbound {
    session: InboundGroupSession,
}

impl GroupInbound {
    /// A session from the key a member sent.
    pub fn from_session_key(bytes: &[u8]) -> Result<Self, MegolmError> {
        let key = SessionKey::from_bytes(bytes).map_err(|_| MegolmError::BadSessionKey)?;
        Ok(Self {
            session: InboundGroupSession::new(&key, CONFIG),
        })
    }

    /// The session's id.
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// Decrypts a message of this session (signature and MAC checked).
    pub fn decrypt(&mut self, body: &MegolmBody) -> Result<Vec<u8>, MegolmError> {
        if body.session_id != self.session.session_id() {
            return Err(MegolmError::WrongSession);
        }
        let message =
            MegolmMessage::from_bytes(&body.ciphertext).map_err(|_| MegolmError::Malformed)?;
        self.session
            .decrypt(&message)
            .map(|decrypted| decrypted.plaintext)
            .map_err(|error| MegolmError::Decryption(error.to_string()))
    }

    /// The session, encrypted under `key`.
    pub fn pickle(&self, key: &StoreKey) -> String {
        self.session.pickle().encrypt(key.secret())
    }

    /// Restores a session from [`GroupInbound::pickle`].
    pub fn unpickle(pickle: &str, key: &StoreKey) -> Result<Self, MegolmError> {
        check_len(pickle)?;
        let pickle = InboundGroupSessionPickle::from_encrypted(pickle, key.secret())
            .map_err(|error| MegolmError::Pickle(error.to_string()))?;
        Ok(Self {
            session: InboundGroupSession::from_pickle(pickle),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_decrypt_with_the_shared_key_and_a_rotated_session_locks_them_out() {
        let mut sender = GroupOutbound::new();
        let mut member = GroupInbound::from_session_key(&sender.session_key()).unwrap();
        let body = sender.encrypt(b"hello group");
        assert_eq!(member.decrypt(&body).unwrap(), b"hello group");

        // After rotation, the old key opens nothing new.
        let mut rotated = GroupOutbound::new();
        let later = rotated.encrypt(b"after rotation");
        assert!(matches!(
            member.decrypt(&later),
            Err(MegolmError::WrongSession)
        ));
        let mut forged = later.clone();
        forged.session_id = member.session_id();
        assert!(member.decrypt(&forged).is_err());
    }

    #[test]
    fn sessions_survive_pickling_and_tampering_is_caught() {
        let key = StoreKey::from_secret([7u8; 32]);
        let sender = GroupOutbound::new();
        let member = GroupInbound::from_session_key(&sender.session_key()).unwrap();
        let mut sender = GroupOutbound::unpickle(&sender.pickle(&key), &key).unwrap();
        let mut member = GroupInbound::unpickle(&member.pickle(&key), &key).unwrap();
        let mut body = sender.encrypt(b"still works");
        assert_eq!(member.decrypt(&body).unwrap(), b"still works");
        let last = body.ciphertext.len() - 1;
        body.ciphertext[last] ^= 1;
        assert!(member.decrypt(&body).is_err());
        assert!(GroupInbound::from_session_key(b"junk").is_err());
        assert!(GroupInbound::unpickle("junk", &key).is_err());
    }
}
