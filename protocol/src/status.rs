//! Status updates (24-hour stories): what a poster's device sends its relay, what a viewer's
//! relay hands out, their bounds, and the clock expiry is judged by.
//!
//! The relay sees who posted, the audience (user ids), when it expires and the ciphertext's
//! size; the text or picture is one Megolm ciphertext that only the audience can open.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

use crate::{
    blob::BlobRef,
    codec::{self, BoundedVec, DecodeError},
    ids::{Address, EnvelopeId, UserId},
    media::MediaMessage,
};

/// How long a status lives after it is posted: 24 hours.
pub const STATUS_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// How far a poster's clock may run ahead of the relay's: a status may expire at most
/// [`STATUS_LIFETIME_MS`] plus this after the relay's now.
pub const STATUS_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Most users one status is shown to.
pub const MAX_STATUS_AUDIENCE: usize = 1024;

/// Largest status ciphertext (a text or a caption and a media reference, Megolm-encrypted).
pub const MAX_STATUS_BODY_BYTES: usize = 64 * 1024;

/// Most statuses one [`StatusBatch`] answer carries (a viewer asks again after the last).
pub const MAX_STATUSES_PER_ANSWER: usize = 256;

/// Most media blobs one status refers to (a picture or a video).
pub const MAX_STATUS_BLOBS: usize = 1;

/// Largest encoded [`StatusPost`] (body, audience, blob references and framing).
pub const MAX_STATUS_POST_BYTES: usize =
    MAX_STATUS_BODY_BYTES + MAX_STATUS_AUDIENCE * 40 + MAX_STATUS_BLOBS * 160 + 256;

/// A status as its poster's device hands it to its home relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPost {
    /// Chosen by the poster; a second post under the same id is a duplicate.
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// Who may fetch it (the poster's own user is implied).
    #[serde(rename = "a")]
    pub audience: BoundedVec<UserId, MAX_STATUS_AUDIENCE>,
    /// When every relay and client deletes it (milliseconds since the epoch): at most
    /// [`STATUS_LIFETIME_MS`] (+ [`STATUS_CLOCK_SKEW_MS`]) ahead, never in the past.
    #[serde(rename = "x")]
    pub expires_at_ms: u64,
    /// One Megolm message of the poster's status session (a [`crate::content::MegolmBody`]).
    #[serde(rename = "b", with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The media blobs the status shows (ids, where, sizes; never their keys), in clear so
    /// each relay holding the status counts a reference to them until it expires.
    #[serde(rename = "m", default, skip_serializing_if = "BoundedVec::is_empty")]
    pub blobs: BoundedVec<BlobRef, MAX_STATUS_BLOBS>,
}

/// Why a relay refuses a status's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    /// It expired already.
    #[error("the status expired already")]
    Past,
    /// It would live longer than 24 hours (plus the allowed skew).
    #[error("the status would live longer than 24 hours")]
    TooFar,
}

impl StatusPost {
    /// Checks the sizes a decoder cannot see (the body's length, the blob references).
    pub fn check(&self) -> Result<(), DecodeError> {
        codec::check_count("status body bytes", self.body.len(), MAX_STATUS_BODY_BYTES)?;
        self.blobs.iter().try_for_each(BlobRef::check)
    }

    /// Whether the expiry is acceptable at `now_ms`.
    pub fn check_expiry(&self, now_ms: u64) -> Result<(), ExpiryError> {
        if self.expires_at_ms <= now_ms {
            return Err(ExpiryError::Past);
        }
        if self.expires_at_ms - now_ms > STATUS_LIFETIME_MS + STATUS_CLOCK_SKEW_MS {
            return Err(ExpiryError::TooFar);
        }
        Ok(())
    }

    /// Encodes the post (for storage).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a post, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let post: Self = codec::decode(bytes, MAX_STATUS_POST_BYTES)?;
        post.check()?;
        Ok(post)
    }
}

/// A status as a relay hands it to a member of its audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusItem {
    /// The posting device (the relay vouches for it: it came over that device's session).
    #[serde(rename = "f")]
    pub poster: Address,
    /// The status id.
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// When the relay stored it (relay clock).
    #[serde(rename = "t")]
    pub posted_at_ms: u64,
    /// When it expires.
    #[serde(rename = "x")]
    pub expires_at_ms: u64,
    /// The Megolm ciphertext.
    #[serde(rename = "b", with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// Statuses for one viewer, oldest first.
pub type StatusBatch = BoundedVec<StatusItem, MAX_STATUSES_PER_ANSWER>;

/// The plaintext inside a status's Megolm message, bound to its id and poster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSealed {
    /// The status id (a relay cannot move a ciphertext under another id).
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// The poster's user.
    #[serde(rename = "u")]
    pub poster: UserId,
    /// When it expires (the same as the clear header; a mismatch is refused).
    #[serde(rename = "x")]
    pub expires_at_ms: u64,
    /// The text, or a picture's or video's caption (at most [`crate::limits::MAX_TEXT_BYTES`]).
    #[serde(rename = "t")]
    pub text: String,
    /// A picture or video: its blob (also named in the clear header) and the key to it.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Box<MediaMessage>>,
}

impl StatusSealed {
    /// Encodes the plaintext for encryption.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a decrypted plaintext, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let sealed: Self = codec::decode(bytes, MAX_STATUS_BODY_BYTES)?;
        codec::check_count(
            "status text bytes",
            sealed.text.len(),
            crate::limits::MAX_TEXT_BYTES,
        )?;
        if let Some(media) = &sealed.media {
            media.check()?;
        }
        Ok(sealed)
    }
}

/// A status as its poster's device tells the user's own other devices about it (inside an
/// Olm [`crate::content::Payload::StatusMine`]): enough for them to list who saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnStatus {
    /// The status id (the viewers' seen receipts name it).
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// When it expires.
    #[serde(rename = "x")]
    pub expires_at_ms: u64,
    /// Who it was posted to.
    #[serde(rename = "a")]
    pub audience: BoundedVec<UserId, MAX_STATUS_AUDIENCE>,
    /// Its text or caption.
    #[serde(rename = "t")]
    pub text: String,
    /// Its picture or video (no thumbnail, to stay within one envelope).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Box<MediaMessage>>,
}

impl OwnStatus {
    /// Checks the bounds a decoder cannot: the text length and the media.
    pub fn check(&self) -> Result<(), DecodeError> {
        codec::check_count(
            "status text bytes",
            self.text.len(),
            crate::limits::MAX_TEXT_BYTES,
        )?;
        if let Some(media) = &self.media {
            media.check()?;
        }
        Ok(())
    }
}

/// "Now" for status expiry: the machine's clock plus an offset that tests advance (so no
/// test sleeps 24 hours). Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicU64>,
}

impl Clock {
    /// The machine's clock, not advanced.
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, plus the advanced offset.
    pub fn now_ms(&self) -> u64 {
        crate::now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Test hook: moves this clock (and its clones) `by_ms` ahead.
    pub fn advance(&self, by_ms: u64) {
        self.offset_ms.fetch_add(by_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(expires_at_ms: u64) -> StatusPost {
        StatusPost {
            id: EnvelopeId::random(),
            audience: BoundedVec::default(),
            expires_at_ms,
            body: vec![1; 10],
            blobs: BoundedVec::default(),
        }
    }

    #[test]
    fn expiry_must_be_ahead_and_within_a_day() {
        let now = 1_000_000_000;
        assert_eq!(post(now).check_expiry(now), Err(ExpiryError::Past));
        assert_eq!(post(now + 1).check_expiry(now), Ok(()));
        assert_eq!(post(now + STATUS_LIFETIME_MS).check_expiry(now), Ok(()));
        let too_far = now + STATUS_LIFETIME_MS + STATUS_CLOCK_SKEW_MS + 1;
        assert_eq!(post(too_far).check_expiry(now), Err(ExpiryError::TooFar));
    }

    #[test]
    fn oversized_body_and_audience_are_typed_errors() {
        let mut big = post(5);
        big.body = vec![0; MAX_STATUS_BODY_BYTES + 1];
        assert!(StatusPost::decode(&big.encode()).is_err());
        let ok = post(5);
        assert_eq!(StatusPost::decode(&ok.encode()), Ok(ok));
    }

    #[test]
    fn blob_references_are_bounded_and_optional() {
        let blob = BlobRef {
            id: crate::blob::BlobId::of(b"sealed"),
            relay: "12D3KooWrelay".into(),
            size: 100,
        };
        let mut with_blob = post(5);
        with_blob.blobs = BoundedVec::new(vec![blob.clone()]).unwrap();
        assert_eq!(
            StatusPost::decode(&with_blob.encode()),
            Ok(with_blob.clone())
        );
        let mut two = with_blob.clone();
        two.blobs = BoundedVec::default();
        let mut encoded = codec::encode(&two);
        // A post from before blob references decodes with none.
        assert_eq!(StatusPost::decode(&encoded), Ok(two));
        #[derive(Serialize)]
        struct TwoBlobs<'a> {
            i: EnvelopeId,
            a: Vec<UserId>,
            x: u64,
            #[serde(with = "serde_bytes")]
            b: &'a [u8],
            m: Vec<BlobRef>,
        }
        encoded = codec::encode(&TwoBlobs {
            i: with_blob.id,
            a: Vec::new(),
            x: 5,
            b: &[1; 10],
            m: vec![blob.clone(), blob],
        });
        assert!(StatusPost::decode(&encoded).is_err(), "one blob at most");
    }

    #[test]
    fn an_own_status_with_a_full_audience_fits_one_envelope() {
        use crate::content::Payload;
        let status = OwnStatus {
            id: EnvelopeId::random(),
            expires_at_ms: u64::MAX,
            audience: BoundedVec::new(
                (0..MAX_STATUS_AUDIENCE)
                    .map(|i| UserId::from_bytes([(i % 251) as u8; 32]))
                    .collect(),
            )
            .unwrap(),
            text: "x".repeat(crate::limits::MAX_TEXT_BYTES),
            media: None,
        };
        let payload = Payload::StatusMine {
            status: Box::new(status),
        };
        let bytes = payload.encode();
        // Room left for a media reference, the Olm framing and the envelope header.
        let room = crate::limits::MAX_ENVELOPE_BYTES - 8 * 1024;
        assert!(bytes.len() < room, "{}", bytes.len());
        assert_eq!(Payload::decode(&bytes), Ok(payload));
    }

    #[test]
    fn clock_clones_advance_together() {
        let clock = Clock::system();
        let clone = clock.clone();
        let before = clone.now_ms();
        clock.advance(STATUS_LIFETIME_MS);
        assert!(clone.now_ms() >= before + STATUS_LIFETIME_MS);
    }
}
