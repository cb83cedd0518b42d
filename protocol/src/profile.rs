//! Profiles: a user's name, about text and picture, sealed under their profile key (shared
//! with contacts over Olm) and kept, as ciphertext, by their home relay.

use serde::{Deserialize, Serialize};

use crate::{
    blob::BlobRef,
    codec::{self, DecodeError},
    ids::UserId,
    media::MediaMessage,
};

/// Longest profile name, in bytes of UTF-8.
pub const MAX_PROFILE_NAME_BYTES: usize = 64;

/// Longest about text, in bytes of UTF-8.
pub const MAX_PROFILE_ABOUT_BYTES: usize = 512;

/// Largest sealed profile a relay keeps or a client opens (the plaintext at its bounds,
/// a picture reference without thumbnail, and the AEAD tag fit well inside).
pub const MAX_SEALED_PROFILE_BYTES: usize = 4 * 1024;

/// Length of a profile key (ChaCha20-Poly1305).
pub const PROFILE_KEY_BYTES: usize = 32;

/// A profile as its owner wrote it (the plaintext inside [`SealedProfile::ciphertext`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Grows by one with every change (and every key rotation).
    #[serde(rename = "v")]
    pub version: u64,
    /// The name the user goes by (at most [`MAX_PROFILE_NAME_BYTES`]).
    #[serde(rename = "n")]
    pub name: String,
    /// A line about them (at most [`MAX_PROFILE_ABOUT_BYTES`]).
    #[serde(rename = "a")]
    pub about: String,
    /// Their picture: a media blob and its key (no thumbnail, no caption).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<MediaMessage>,
}

impl Profile {
    /// Encodes the plaintext for sealing.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes an opened plaintext, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let profile: Self = codec::decode(bytes, MAX_SEALED_PROFILE_BYTES)?;
        profile.check()?;
        Ok(profile)
    }

    /// Checks the bounds a decoder cannot: text lengths, and a picture without thumbnail.
    pub fn check(&self) -> Result<(), DecodeError> {
        for (len, max) in [
            (self.name.len(), MAX_PROFILE_NAME_BYTES),
            (self.about.len(), MAX_PROFILE_ABOUT_BYTES),
        ] {
            if len > max {
                return Err(DecodeError::TooLarge { len, max });
            }
        }
        if let Some(picture) = &self.picture {
            picture.check()?;
            if picture.thumbnail.is_some() || picture.caption.is_some() {
                return Err(DecodeError::Invalid {
                    field: "profile picture",
                    reason: "no thumbnail or caption in a profile",
                });
            }
        }
        Ok(())
    }
}

/// What the home relay keeps for a user: the sealed profile, its version and the picture's
/// blob in clear (so the relay counts the reference, as it does for an envelope's blobs).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedProfile {
    /// Whose profile.
    #[serde(rename = "u")]
    pub user: UserId,
    /// Its version (bound into the ciphertext's associated data).
    #[serde(rename = "v")]
    pub version: u64,
    /// The picture's blob, if the profile has a picture.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<BlobRef>,
    /// The [`Profile`], sealed under the profile key (nonce and tag included).
    #[serde(rename = "c", with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedProfile")
            .field("user", &self.user)
            .field("version", &self.version)
            .field("picture", &self.picture)
            .field("ciphertext_bytes", &self.ciphertext.len())
            .finish()
    }
}

impl SealedProfile {
    /// Encodes the record (for storage).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a stored record, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let sealed: Self = codec::decode(bytes, MAX_SEALED_PROFILE_BYTES + 256)?;
        sealed.check()?;
        Ok(sealed)
    }

    /// Checks the bounds a decoder cannot: ciphertext size and the picture reference.
    pub fn check(&self) -> Result<(), DecodeError> {
        codec::check_count(
            "sealed profile bytes",
            self.ciphertext.len(),
            MAX_SEALED_PROFILE_BYTES,
        )?;
        if let Some(picture) = &self.picture {
            picture.check()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        blob::BlobId,
        media::{MEDIA_CHUNK, MediaKind},
    };

    fn picture() -> MediaMessage {
        MediaMessage {
            blob: BlobRef {
                id: BlobId::of(b"sealed"),
                relay: "12D3KooWrelay".into(),
                size: 1_016,
            },
            key: [7; 32],
            nonce: [1; 7],
            chunk: MEDIA_CHUNK,
            size: 1_000,
            name: "me.jpg".into(),
            mime: "image/jpeg".into(),
            kind: MediaKind::Image,
            thumbnail: None,
            caption: None,
        }
    }

    #[test]
    fn a_profile_at_its_bounds_round_trips() {
        let profile = Profile {
            version: 3,
            name: "n".repeat(MAX_PROFILE_NAME_BYTES),
            about: "a".repeat(MAX_PROFILE_ABOUT_BYTES),
            picture: Some(picture()),
        };
        let bytes = profile.encode();
        assert!(bytes.len() + 64 < MAX_SEALED_PROFILE_BYTES);
        assert_eq!(Profile::decode(&bytes).unwrap(), profile);
    }

    #[test]
    fn overlong_texts_and_thumbnails_are_refused() {
        let long_name = Profile {
            version: 1,
            name: "n".repeat(MAX_PROFILE_NAME_BYTES + 1),
            about: String::new(),
            picture: None,
        };
        assert!(Profile::decode(&long_name.encode()).is_err());
        let long_about = Profile {
            name: String::new(),
            about: "a".repeat(MAX_PROFILE_ABOUT_BYTES + 1),
            ..long_name.clone()
        };
        assert!(Profile::decode(&long_about.encode()).is_err());
        let mut with_thumbnail = picture();
        with_thumbnail.thumbnail = Some(vec![0; 10]);
        let thumbnailed = Profile {
            name: String::new(),
            about: String::new(),
            picture: Some(with_thumbnail),
            ..long_name
        };
        assert!(Profile::decode(&thumbnailed.encode()).is_err());
    }

    #[test]
    fn sealed_profiles_are_bounded_and_keep_ciphertext_out_of_debug() {
        let sealed = SealedProfile {
            user: UserId::from_bytes([1; 32]),
            version: 2,
            picture: None,
            ciphertext: vec![0xab; MAX_SEALED_PROFILE_BYTES + 1],
        };
        assert!(SealedProfile::decode(&sealed.encode()).is_err());
        let fits = SealedProfile {
            ciphertext: vec![0xab; 100],
            ..sealed
        };
        assert_eq!(SealedProfile::decode(&fits.encode()).unwrap(), fits);
        assert!(!format!("{fits:?}").contains("171"));
        assert!(format!("{fits:?}").contains("ciphertext_bytes: 100"));
    }
}
