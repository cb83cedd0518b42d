//! Home records: an account's signed statement of which relay is its home.
//!
//! Relays publish them in the DHT under [`HomeRecord::dht_key`]; every relay verifies the
//! signature, the expiry and that the sequence number never goes down before storing or
//! using one. Moving home is signing a record with a higher sequence number.

use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::{
    codec::{self, BoundedVec, DecodeError},
    ids::UserId,
    limits::{MAX_CARD_ADDRS, MAX_HOME_RECORD_BYTES},
};

const HOME_MAGIC: &[u8; 4] = b"TDH1";

/// Prefix of the DHT key of a home record (followed by the user id's bytes).
pub const HOME_KEY_PREFIX: &[u8] = b"/tidings/home/1/";

/// How long a freshly signed home record is valid.
pub const HOME_RECORD_LIFETIME_MS: u64 = 30 * 24 * 3600 * 1000;

/// Why a home record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeError {
    /// It does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The account signature does not verify.
    #[error("home record signature does not verify")]
    BadSignature,
    /// It is stored under another user's key.
    #[error("home record is for another user")]
    WrongKey,
    /// Past its expiry.
    #[error("home record expired")]
    Expired,
    /// A record with a higher sequence number (or a different one with the same) is known.
    #[error("home record is stale: sequence {got} after {known}")]
    Stale {
        /// Its sequence number.
        got: u64,
        /// The sequence number already known.
        known: u64,
    },
}

/// Which relay is a user's home, signed by the user's account key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeRecord {
    /// The user.
    #[serde(rename = "u")]
    pub user: UserId,
    /// The home relay's libp2p peer id (text form).
    #[serde(rename = "r")]
    pub relay: String,
    /// Addresses of the home relay (multiaddr text), as hints.
    #[serde(rename = "a")]
    pub addrs: BoundedVec<String, MAX_CARD_ADDRS>,
    /// Grows with every new record of this user.
    #[serde(rename = "n")]
    pub seq: u64,
    /// When it stops being valid (ms since the epoch).
    #[serde(rename = "x")]
    pub expires_at_ms: u64,
    /// Account key's signature.
    #[serde(rename = "s", with = "serde_bytes")]
    pub signature: [u8; 64],
}

fn signed_bytes(
    user: &UserId,
    relay: &str,
    addrs: &[String],
    seq: u64,
    expires_at_ms: u64,
) -> Vec<u8> {
    let mut bytes = HOME_MAGIC.to_vec();
    codec::encode_into(&(user, relay, addrs, seq, expires_at_ms), &mut bytes);
    bytes
}

impl HomeRecord {
    /// Signs a record saying `relay` (reachable at `addrs`) is home for the account.
    pub fn sign(
        account_key: &SigningKey,
        relay: String,
        addrs: BoundedVec<String, MAX_CARD_ADDRS>,
        seq: u64,
        expires_at_ms: u64,
    ) -> Self {
        let user = UserId::from(&account_key.verifying_key());
        let message = signed_bytes(&user, &relay, &addrs, seq, expires_at_ms);
        Self {
            user,
            relay,
            addrs,
            seq,
            expires_at_ms,
            signature: account_key.sign(&message).to_bytes(),
        }
    }

    /// Checks the signature and that the record has not expired at `now_ms`.
    pub fn verify(&self, now_ms: u64) -> Result<(), HomeError> {
        let key = self
            .user
            .verifying_key()
            .map_err(|_| HomeError::BadSignature)?;
        let message = signed_bytes(
            &self.user,
            &self.relay,
            &self.addrs,
            self.seq,
            self.expires_at_ms,
        );
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| HomeError::BadSignature)?;
        if self.expires_at_ms <= now_ms {
            return Err(HomeError::Expired);
        }
        Ok(())
    }

    /// Whether this record may replace `known`: a higher sequence number, or the very same
    /// record again.
    pub fn supersedes(&self, known: &HomeRecord) -> Result<(), HomeError> {
        if self.seq > known.seq || self == known {
            return Ok(());
        }
        Err(HomeError::Stale {
            got: self.seq,
            known: known.seq,
        })
    }

    /// The DHT key for `user`'s home record.
    pub fn dht_key(user: &UserId) -> Vec<u8> {
        let mut key = HOME_KEY_PREFIX.to_vec();
        key.extend_from_slice(user.as_bytes());
        key
    }

    /// Encodes the record as a DHT value.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Fails with [`DecodeError::TooLarge`] when the record encodes to more than
    /// [`MAX_HOME_RECORD_BYTES`]. A record inside a frame is otherwise bounded only by the
    /// frame, yet relays store it in their user records and put it in the DHT.
    pub fn check_len(&self) -> Result<(), DecodeError> {
        let len = self.encode().len();
        if len > MAX_HOME_RECORD_BYTES {
            return Err(DecodeError::TooLarge {
                len,
                max: MAX_HOME_RECORD_BYTES,
            });
        }
        Ok(())
    }

    /// Decodes a DHT value found under `key` and verifies it (signature, expiry, key).
    pub fn decode_verified(key: &[u8], value: &[u8], now_ms: u64) -> Result<Self, HomeError> {
        let record: HomeRecord = codec::decode(value, MAX_HOME_RECORD_BYTES)?;
        if key != Self::dht_key(&record.user).as_slice() {
            return Err(HomeError::WrongKey);
        }
        record.verify(now_ms)?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, expires: u64) -> (SigningKey, HomeRecord) {
        let key = SigningKey::from_bytes(&[8; 32]);
        let addrs = BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/1".into()]).unwrap_or_default();
        let record = HomeRecord::sign(&key, "12D3KooWrelay".into(), addrs, seq, expires);
        (key, record)
    }

    #[test]
    fn a_signed_record_verifies_under_its_key_only() {
        let (_, record) = record(1, 100);
        let key = HomeRecord::dht_key(&record.user);
        assert_eq!(
            HomeRecord::decode_verified(&key, &record.encode(), 50),
            Ok(record.clone())
        );
        let other = HomeRecord::dht_key(&UserId::from_bytes([1; 32]));
        assert_eq!(
            HomeRecord::decode_verified(&other, &record.encode(), 50),
            Err(HomeError::WrongKey)
        );
        assert_eq!(record.verify(100), Err(HomeError::Expired));
    }

    #[test]
    fn tampering_and_rollback_are_refused() {
        let (_, mut record) = record(5, 100);
        let newer = record.clone();
        record.relay = "12D3KooWevil".into();
        assert_eq!(record.verify(1), Err(HomeError::BadSignature));
        let (_, older) = self::record(4, 100);
        assert_eq!(
            older.supersedes(&newer),
            Err(HomeError::Stale { got: 4, known: 5 })
        );
        assert_eq!(newer.supersedes(&newer), Ok(()));
        let (_, next) = self::record(6, 100);
        assert_eq!(next.supersedes(&newer), Ok(()));
    }
}
