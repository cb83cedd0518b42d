//! Why an Olm operation failed.

use tidings_protocol::{CertError, DecodeError};
use vodozemac::olm::{DecryptionError, EncryptionError, SessionCreationError};

/// Why an Olm operation failed. Every failure caused by a peer's input is one of these.
#[derive(Debug, thiserror::Error)]
pub enum OlmError {
    /// The peer's key bundle does not verify for the expected user.
    #[error("key bundle rejected: {0}")]
    InvalidBundle(#[source] CertError),
    /// vodozemac refused to build an outbound session (e.g. a non-contributory key).
    #[error("cannot create an outbound session: {0}")]
    OutboundSession(#[source] SessionCreationError),
    /// The body's message type is neither 0 (pre-key) nor 1 (normal).
    #[error("unknown Olm message type {0}")]
    UnknownMessageType(u8),
    /// The ciphertext does not decode as an Olm message.
    #[error("malformed Olm message: {0}")]
    MalformedMessage(#[source] vodozemac::DecodeError),
    /// A pre-key message came without the sender's keys.
    #[error("pre-key message without sender keys")]
    MissingSenderKeys,
    /// A normal message carried sender keys: only a pre-key message may (it opens a session).
    #[error("sender keys on a normal message")]
    UnexpectedSenderKeys,
    /// The sender keys do not prove that the pre-key message comes from the sending device.
    #[error("sender keys rejected: {0}")]
    ForgedSenderKeys(#[from] SenderKeysError),
    /// A pre-key message names a one-time key this account does not hold: never ours, or
    /// already used by an earlier session (e.g. a replayed message).
    #[error("pre-key message uses an unknown or already used one-time key")]
    UnknownOneTimeKey,
    /// vodozemac refused to build an inbound session from the pre-key message.
    #[error("cannot create an inbound session: {0}")]
    InboundSession(#[source] SessionCreationError),
    /// There is no session with this peer device to decrypt a normal message.
    #[error("no session with this device")]
    NoSession,
    /// None of the sessions with this peer device decrypts the normal message.
    #[error("none of {tried} sessions with this device decrypts the message")]
    NoMatchingSession {
        /// How many sessions were tried.
        tried: usize,
    },
    /// The session the message belongs to cannot decrypt it (bad MAC, message key already
    /// used or discarded, too large a gap).
    #[error("decryption failed: {0}")]
    Decryption(#[source] DecryptionError),
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encryption(#[source] EncryptionError),
    /// A pickle is longer than [`MAX_PICKLE_LEN`](super::MAX_PICKLE_LEN).
    #[error("pickle of {len} bytes exceeds the limit of {max}")]
    PickleTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A pickle does not decrypt under the key (wrong key, or altered) or does not parse.
    #[error("cannot unpickle: {0}")]
    Pickle(#[source] vodozemac::PickleError),
    /// A session pickle lacks its peer identity key prefix, or the prefix is malformed.
    #[error("malformed session pickle: {0}")]
    MalformedPickle(&'static str),
    /// A stored list of sessions does not decode.
    #[error("stored sessions do not decode: {0}")]
    Decode(#[from] DecodeError),
}

/// Why the sender keys on a pre-key message were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderKeysError {
    /// The device certificate's signature does not verify.
    #[error("device certificate does not verify: {0}")]
    BadCert(#[source] CertError),
    /// The certificate is for another address than the envelope's sender.
    #[error("device certificate is for another address than the sender")]
    WrongAddress,
    /// The identity key's signature does not verify.
    #[error("identity key does not verify: {0}")]
    BadIdentityKey(#[source] CertError),
    /// The identity key is signed by another device than the sender.
    #[error("identity key belongs to another device than the sender")]
    WrongDevice,
    /// The signed identity key is not the one the pre-key message was built with.
    #[error("identity key does not match the pre-key message")]
    IdentityKeyMismatch,
}
