//! Media blobs and the blob protocols (`/tidings/blob/1` between a device and its home
//! relay, `/tidings/blob-federation/1` between relays): the id of an encrypted blob is the
//! SHA-256 of its ciphertext, so whoever holds the bytes can check them against the id.
//!
//! One transfer per stream: a request frame, an answer frame, then data frames (and, for an
//! upload, a last answer). A transfer cut short is resumed on a new stream from an offset.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    codec::{self, DecodeError},
    errors::ErrorAnswer,
    ids::{IdError, decode_base58},
};

/// Device to home relay: uploads and downloads.
pub const BLOB_PROTOCOL: &str = "/tidings/blob/1";

/// Relay to relay: a relay fetching a blob from the relay that holds it.
pub const BLOB_FEDERATION_PROTOCOL: &str = "/tidings/blob-federation/1";

/// Most bytes of blob data in one data frame.
pub const MAX_BLOB_DATA_BYTES: usize = 256 * 1024;

/// Largest blob the protocol can describe (a relay allows less: its `max_blob_bytes`).
pub const MAX_BLOB_BYTES: u64 = 4 << 30;

/// Most blobs one envelope may name.
pub const MAX_BLOBS_PER_ENVELOPE: usize = 4;

/// Longest relay id (a libp2p peer id in text) a blob reference names.
pub const MAX_BLOB_RELAY_LEN: usize = 64;

/// Largest encoded request or answer frame (data frames are bounded by
/// [`MAX_BLOB_DATA_BYTES`]).
const MAX_BLOB_CONTROL_BYTES: usize = 2048;

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

/// Where a blob is and how big its ciphertext is: what an envelope names in its header (so
/// relays can count references and fetch it) and a media message carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// The blob.
    #[serde(rename = "i")]
    pub id: BlobId,
    /// The relay it was uploaded to (its peer id in text).
    #[serde(rename = "r")]
    pub relay: String,
    /// Ciphertext bytes.
    #[serde(rename = "s")]
    pub size: u64,
}

impl BlobRef {
    /// Checks the bounds a decoder cannot: relay id length and size.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.relay.len() > MAX_BLOB_RELAY_LEN {
            return Err(DecodeError::TooLarge {
                len: self.relay.len(),
                max: MAX_BLOB_RELAY_LEN,
            });
        }
        check_size(self.size)
    }
}

fn check_size(size: u64) -> Result<(), DecodeError> {
    if size > MAX_BLOB_BYTES {
        return Err(DecodeError::TooLarge {
            len: usize::try_from(size).unwrap_or(usize::MAX),
            max: usize::try_from(MAX_BLOB_BYTES).unwrap_or(usize::MAX),
        });
    }
    Ok(())
}

/// The first frame of a blob stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobRequest {
    /// Store the blob `id` of `size` ciphertext bytes, sending from `offset` (where an
    /// earlier, interrupted upload stopped; 0 for a new one).
    #[serde(rename = "up")]
    Upload {
        /// The blob (SHA-256 of all its bytes: checked at the end).
        #[serde(rename = "i")]
        id: BlobId,
        /// Its size.
        #[serde(rename = "s")]
        size: u64,
        /// Where the device means to start.
        #[serde(rename = "o")]
        offset: u64,
    },
    /// Send the blob `id` from `offset`. On `/tidings/blob/1`, `relay` names the relay the
    /// blob was uploaded to: a relay that does not hold it fetches it from there first.
    #[serde(rename = "down")]
    Download {
        /// The blob.
        #[serde(rename = "i")]
        id: BlobId,
        /// Where it was uploaded (peer id in text), if elsewhere.
        #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
        relay: Option<String>,
        /// The first byte wanted.
        #[serde(rename = "o")]
        offset: u64,
    },
}

impl BlobRequest {
    /// Encodes as a frame body.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a frame body, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let request: Self = codec::decode(bytes, MAX_BLOB_CONTROL_BYTES)?;
        match &request {
            BlobRequest::Upload { size, offset, .. } => {
                check_size(*size)?;
                check_size(*offset)?;
            }
            BlobRequest::Download { relay, offset, .. } => {
                check_size(*offset)?;
                if let Some(relay) = relay
                    && relay.len() > MAX_BLOB_RELAY_LEN
                {
                    return Err(DecodeError::TooLarge {
                        len: relay.len(),
                        max: MAX_BLOB_RELAY_LEN,
                    });
                }
            }
        }
        Ok(request)
    }
}

/// What the relay answers on a blob stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobAnswer {
    /// Upload: send data from `offset` (the relay's partial copy may end elsewhere than the
    /// device thought).
    #[serde(rename = "ready")]
    Ready {
        /// The first byte the relay wants.
        #[serde(rename = "o")]
        offset: u64,
    },
    /// Upload: the blob is stored whole (already before, or now: its hash checked, on disk,
    /// committed).
    #[serde(rename = "stored")]
    Stored,
    /// Download: data frames follow from `offset` to the end of the `size` bytes.
    #[serde(rename = "sending")]
    Sending {
        /// The blob's size.
        #[serde(rename = "s")]
        size: u64,
        /// The first byte sent.
        #[serde(rename = "o")]
        offset: u64,
    },
    /// Download: the relay is fetching the blob from the relay that holds it (progress).
    #[serde(rename = "fetching")]
    Fetching {
        /// Bytes fetched so far.
        #[serde(rename = "h")]
        have: u64,
        /// The blob's size.
        #[serde(rename = "s")]
        size: u64,
    },
    /// Refused: `quota_exceeded`, `blob_too_large`, `hash_mismatch`, `blob_not_found`,
    /// `unavailable`, `rate_limited`, `storage_full`, `not_registered`, `malformed`.
    #[serde(rename = "error")]
    Error(ErrorAnswer),
}

impl BlobAnswer {
    /// Encodes as a frame body.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a frame body, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_BLOB_CONTROL_BYTES)
    }
}

/// One data frame: the next bytes of the blob, at most [`MAX_BLOB_DATA_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobData {
    /// The bytes.
    #[serde(rename = "d", with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl BlobData {
    /// Encodes as a frame body.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a frame body, checking its bound.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        // CBOR adds at most 9 bytes of header to a byte string and a few for the map.
        codec::decode(bytes, MAX_BLOB_DATA_BYTES + 16)
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

    #[test]
    fn frames_round_trip_and_their_bounds_hold() {
        let id = BlobId::of(b"x");
        for request in [
            BlobRequest::Upload {
                id,
                size: 10,
                offset: 3,
            },
            BlobRequest::Download {
                id,
                relay: Some("12D3KooW".into()),
                offset: 0,
            },
        ] {
            assert_eq!(BlobRequest::decode(&request.encode()), Ok(request));
        }
        let huge = BlobRequest::Upload {
            id,
            size: MAX_BLOB_BYTES + 1,
            offset: 0,
        };
        assert!(BlobRequest::decode(&huge.encode()).is_err());
        let long_relay = BlobRequest::Download {
            id,
            relay: Some("r".repeat(MAX_BLOB_RELAY_LEN + 1)),
            offset: 0,
        };
        assert!(BlobRequest::decode(&long_relay.encode()).is_err());
        let data = BlobData {
            bytes: vec![7; MAX_BLOB_DATA_BYTES],
        };
        assert_eq!(BlobData::decode(&data.encode()), Ok(data));
        let too_much = BlobData {
            bytes: vec![7; MAX_BLOB_DATA_BYTES + 64],
        };
        assert!(BlobData::decode(&too_much.encode()).is_err());
        for answer in [
            BlobAnswer::Ready { offset: 5 },
            BlobAnswer::Stored,
            BlobAnswer::Sending { size: 9, offset: 1 },
            BlobAnswer::Fetching { have: 1, size: 9 },
        ] {
            assert_eq!(BlobAnswer::decode(&answer.encode()), Ok(answer));
        }
    }
}
