//! Media blobs: the id of an encrypted blob is the SHA-256 of its ciphertext, so whoever
//! holds the bytes can check them against the id.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{IdError, decode_base58};

/// The id of a blob: SHA-256 of its ciphertext. Its text form is base58.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlobId(#[serde(with = "serde_bytes")] [u8; 32]);

impl BlobId {
    /// Wraps a SHA-256 digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id of `ciphertext`, all of it at once.
    pub fn of(ciphertext: &[u8]) -> Self {
        let mut hasher = BlobHasher::default();
        hasher.update(ciphertext);
        hasher.finish()
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

impl FromStr for BlobId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        Ok(Self(decode_base58(text)?))
    }
}

/// Computes a [`BlobId`] over ciphertext that arrives in pieces.
#[derive(Debug, Clone, Default)]
pub struct BlobHasher(Sha256);

impl BlobHasher {
    /// Adds the next piece.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// The id of everything added.
    pub fn finish(self) -> BlobId {
        BlobId(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_same_in_pieces_and_round_trips_as_text() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let mut hasher = BlobHasher::default();
        for piece in bytes.chunks(777) {
            hasher.update(piece);
        }
        let id = hasher.finish();
        assert_eq!(id, BlobId::of(&bytes));
        assert_ne!(id, BlobId::of(&bytes[1..]));
        assert_eq!(id.to_string().parse::<BlobId>(), Ok(id));
        assert!("not-base58!".parse::<BlobId>().is_err());
        assert!("abc".parse::<BlobId>().is_err(), "too short");
    }
}
