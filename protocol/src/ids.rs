//! Identifiers: users, devices, addresses, envelopes and their text forms.

use std::{fmt, str::FromStr};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// Why a text or byte form of an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text is not valid base58.
    #[error("not base58")]
    NotBase58,
    /// The decoded bytes have the wrong length.
    #[error("expected {expected} bytes, got {got}")]
    WrongLength {
        /// The length the identifier needs.
        expected: usize,
        /// The length that was found.
        got: usize,
    },
    /// The bytes are not a valid ed25519 public key.
    #[error("not a valid ed25519 public key")]
    NotAKey,
}

pub(crate) fn decode_base58<const N: usize>(text: &str) -> Result<[u8; N], IdError> {
    // Base58 expands by ~1.37; anything longer cannot be N bytes.
    if text.len() > N * 2 {
        return Err(IdError::WrongLength {
            expected: N,
            got: text.len(),
        });
    }
    let bytes = bs58::decode(text)
        .into_vec()
        .map_err(|_| IdError::NotBase58)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| IdError::WrongLength {
        expected: N,
        got: bytes.len(),
    })
}

macro_rules! key_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(#[serde(with = "serde_bytes")] [u8; 32]);

        impl $name {
            /// Wraps the bytes of an ed25519 public key.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw public key bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The ed25519 key these bytes name, if they are a valid point.
            pub fn verifying_key(&self) -> Result<VerifyingKey, IdError> {
                VerifyingKey::from_bytes(&self.0).map_err(|_| IdError::NotAKey)
            }
        }

        impl From<&VerifyingKey> for $name {
            fn from(key: &VerifyingKey) -> Self {
                Self(key.to_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&bs58::encode(self.0).into_string())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                let id = Self(decode_base58(text)?);
                id.verifying_key()?;
                Ok(id)
            }
        }
    };
}

key_id!(
    /// A user: the public half of their ed25519 account key. Its text form (base58) is the user id.
    UserId
);
key_id!(
    /// A device: the public half of its ed25519 device key, which is also its libp2p identity.
    DeviceId
);

/// One device of one user: where pairwise envelopes come from and go to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The account.
    #[serde(rename = "u")]
    pub user: UserId,
    /// The device of that account.
    #[serde(rename = "d")]
    pub device: DeviceId,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.device)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// A 128-bit random identifier.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(#[serde(with = "serde_bytes")] [u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(rand::random())
            }

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for byte in self.0 {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                if text.len() != 32 || !text.is_ascii() {
                    return Err(IdError::WrongLength { expected: 16, got: text.len() / 2 });
                }
                let mut bytes = [0u8; 16];
                for (index, byte) in bytes.iter_mut().enumerate() {
                    let pair = &text[index * 2..index * 2 + 2];
                    *byte = u8::from_str_radix(pair, 16).map_err(|_| IdError::NotBase58)?;
                }
                Ok(Self(bytes))
            }
        }
    };
}

random_id!(
    /// Identifies one envelope end to end; relays and clients dedupe by it.
    EnvelopeId
);

/// Bytes of an [`EnvelopeId::new`] that hold the time (milliseconds since the epoch, big
/// endian: 48 bits last until the year 10889).
pub const ENVELOPE_ID_TIME_BYTES: usize = 6;

impl EnvelopeId {
    /// A fresh id for an envelope sent now: the time in milliseconds (48 bits, big endian),
    /// then 80 random bits. One sender's ids sort by when they were made, so a relay's dedupe
    /// table (keyed by sender, then id) takes them at its end instead of all over its pages.
    /// Relays accept any id; this is only what honest clients make.
    pub fn new() -> Self {
        Self::at_ms(crate::now_ms())
    }

    /// Like [`EnvelopeId::new`], made at `ms` (milliseconds since the epoch).
    pub fn at_ms(ms: u64) -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[..ENVELOPE_ID_TIME_BYTES]
            .copy_from_slice(&ms.to_be_bytes()[8 - ENVELOPE_ID_TIME_BYTES..]);
        Self(bytes)
    }

    /// The milliseconds an [`EnvelopeId::new`] was made at (any id has such a prefix; only
    /// honest clients' ids mean it).
    pub fn time_ms(&self) -> u64 {
        let mut ms = [0u8; 8];
        ms[8 - ENVELOPE_ID_TIME_BYTES..].copy_from_slice(&self.0[..ENVELOPE_ID_TIME_BYTES]);
        u64::from_be_bytes(ms)
    }
}

impl Default for EnvelopeId {
    /// A fresh id made now (see [`EnvelopeId::new`]).
    fn default() -> Self {
        Self::new()
    }
}
random_id!(
    /// Identifies a group.
    GroupId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_text_round_trips_and_rejects_junk() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let user = UserId::from(&key.verifying_key());
        let text = user.to_string();
        assert_eq!(text.parse::<UserId>(), Ok(user));
        assert_eq!("0OIl".parse::<UserId>(), Err(IdError::NotBase58));
        assert!(matches!(
            "abc".parse::<UserId>(),
            Err(IdError::WrongLength { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn envelope_ids_made_later_sort_after_earlier_ones(
            earlier in 0u64..(1 << 48) - 1,
            gap in 1u64..1 << 40,
        ) {
            let later = (earlier + gap).min((1 << 48) - 1);
            proptest::prop_assume!(later > earlier);
            let (first, second) = (EnvelopeId::at_ms(earlier), EnvelopeId::at_ms(later));
            proptest::prop_assert!(first < second);
            proptest::prop_assert!(first.as_bytes() < second.as_bytes());
            proptest::prop_assert_eq!(first.time_ms(), earlier);
            proptest::prop_assert_eq!(second.time_ms(), later);
        }
    }

    #[test]
    fn envelope_ids_made_in_the_same_millisecond_differ() {
        let (one, two) = (EnvelopeId::at_ms(5), EnvelopeId::at_ms(5));
        assert_ne!(one, two);
        assert_eq!((one.time_ms(), two.time_ms()), (5, 5));
        let now = crate::now_ms();
        let fresh = EnvelopeId::new();
        assert!((now..now + 60_000).contains(&fresh.time_ms()));
    }

    #[test]
    fn envelope_id_hex_round_trips() {
        let id = EnvelopeId::random();
        assert_eq!(id.to_string().parse::<EnvelopeId>(), Ok(id));
        assert!("zz".parse::<EnvelopeId>().is_err());
        assert!("é".repeat(16).parse::<EnvelopeId>().is_err());
    }
}
