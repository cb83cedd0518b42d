//! Media messages: what a message about an encrypted blob carries inside the end-to-end
//! payload (the blob's reference, the key that opens it, and what to show before opening).

use serde::{Deserialize, Serialize};

use crate::{blob::BlobRef, codec::DecodeError, limits::MAX_TEXT_BYTES};

/// Longest file name, in bytes of UTF-8.
pub const MAX_MEDIA_NAME_BYTES: usize = 255;

/// Longest MIME type.
pub const MAX_MEDIA_MIME_BYTES: usize = 64;

/// Largest thumbnail (a small JPEG made by the sender's client).
pub const MAX_THUMBNAIL_BYTES: usize = 16 * 1024;

/// The one chunk size media is sealed with today (plaintext bytes per chunk); a message
/// naming another is refused by this version with a clear error.
pub const MEDIA_CHUNK: u32 = 64 * 1024;

/// What a media file is, for showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaKind {
    /// A picture.
    #[serde(rename = "i")]
    Image,
    /// A video.
    #[serde(rename = "v")]
    Video,
    /// A sound recording.
    #[serde(rename = "a")]
    Audio,
    /// Any other file.
    #[serde(rename = "f")]
    #[serde(other)]
    File,
}

/// A media message: the sealed blob and everything needed to fetch, open and show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMessage {
    /// The blob (also named in the envelope's header).
    #[serde(rename = "b")]
    pub blob: BlobRef,
    /// The key it is sealed under.
    #[serde(rename = "k", with = "serde_bytes")]
    pub key: [u8; 32],
    /// The STREAM nonce prefix.
    #[serde(rename = "n", with = "serde_bytes")]
    pub nonce: [u8; 7],
    /// Plaintext bytes per chunk ([`MEDIA_CHUNK`]).
    #[serde(rename = "c")]
    pub chunk: u32,
    /// Plaintext size.
    #[serde(rename = "z")]
    pub size: u64,
    /// The file's name (no directories).
    #[serde(rename = "f")]
    pub name: String,
    /// Its MIME type, e.g. `image/jpeg`.
    #[serde(rename = "m")]
    pub mime: String,
    /// What it is.
    #[serde(rename = "t")]
    pub kind: MediaKind,
    /// A small JPEG preview, for images.
    #[serde(
        rename = "p",
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_bytes"
    )]
    pub thumbnail: Option<Vec<u8>>,
    /// Text sent with it.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

impl std::fmt::Debug for MediaMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("MediaMessage")
            .field("blob", &self.blob)
            .field("size", &self.size)
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl MediaMessage {
    /// Checks the bounds a decoder cannot: text lengths, thumbnail size, the blob reference,
    /// and a file name without directories.
    pub fn check(&self) -> Result<(), DecodeError> {
        self.blob.check()?;
        let caption = self.caption.as_ref().map_or(0, String::len);
        let thumbnail = self.thumbnail.as_ref().map_or(0, Vec::len);
        for (len, max) in [
            (self.name.len(), MAX_MEDIA_NAME_BYTES),
            (self.mime.len(), MAX_MEDIA_MIME_BYTES),
            (thumbnail, MAX_THUMBNAIL_BYTES),
            (caption, MAX_TEXT_BYTES),
        ] {
            if len > max {
                return Err(DecodeError::TooLarge { len, max });
            }
        }
        if self.name.contains(['/', '\\', '\0']) || self.name == ".." || self.name == "." {
            return Err(DecodeError::Invalid {
                field: "media name",
                reason: "a file name, not a path",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{blob::BlobId, content::Payload};

    fn photo() -> MediaMessage {
        MediaMessage {
            blob: BlobRef {
                id: BlobId::of(b"sealed"),
                relay: "12D3KooWrelay".into(),
                size: 1_000_016,
            },
            key: [7; 32],
            nonce: [1; 7],
            chunk: MEDIA_CHUNK,
            size: 1_000_000,
            name: "beach.jpg".into(),
            mime: "image/jpeg".into(),
            kind: MediaKind::Image,
            thumbnail: Some(vec![0xff; MAX_THUMBNAIL_BYTES]),
            caption: Some("look".into()),
        }
    }

    #[test]
    fn a_media_payload_round_trips_within_one_envelope_and_its_bounds_hold() {
        let payload = Payload::Media {
            media: Box::new(photo()),
        };
        let bytes = payload.encode();
        assert!(bytes.len() < crate::limits::MAX_ENVELOPE_BYTES / 2);
        assert_eq!(Payload::decode(&bytes), Ok(payload));
        assert!(
            !format!("{:?}", photo()).contains("7, 7"),
            "no key in Debug"
        );

        for broken in [
            MediaMessage {
                name: "../../etc/passwd".into(),
                ..photo()
            },
            MediaMessage {
                name: "n".repeat(MAX_MEDIA_NAME_BYTES + 1),
                ..photo()
            },
            MediaMessage {
                thumbnail: Some(vec![0; MAX_THUMBNAIL_BYTES + 1]),
                ..photo()
            },
            MediaMessage {
                mime: "m".repeat(MAX_MEDIA_MIME_BYTES + 1),
                ..photo()
            },
        ] {
            let payload = Payload::SentMedia {
                to: crate::ids::UserId::from_bytes([3; 32]),
                media: Box::new(broken),
            };
            assert!(Payload::decode(&payload.encode()).is_err());
        }
    }
}
