//! Media: files sealed on this device, uploaded to the home relay as blobs, sent as
//! `Payload::Media` messages naming the blob and its key, saved (downloaded, checked,
//! opened) and forwarded by reference.

mod crypt;
mod send;
mod thumbnail;
pub mod transfer;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tidings_protocol::{BlobId, EnvelopeId, media::MediaKind};

pub use send::SentFile;
pub(crate) use send::free_name_in;
pub use transfer::{Progress, TransferError};

/// Sub-directory of the data dir holding sealed files waiting for their upload.
const OUTGOING_DIR: &str = "media/outgoing";

/// Sub-directory of the data dir holding downloads in progress.
const INCOMING_DIR: &str = "media/incoming";

/// Why sending, saving or forwarding media failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: Arc<std::io::Error>,
    },
    /// Sealing or opening failed (an opened blob that does not open was altered).
    #[error("{0}")]
    Crypt(#[from] tidings_keys::media::MediaError),
    /// The upload or download failed.
    #[error("{0}")]
    Transfer(#[from] TransferError),
    /// The downloaded bytes are not the blob the message names (the relay's copy is
    /// altered): nothing was saved.
    #[error("the downloaded blob does not match its id {expected} (got {got}): not saved")]
    Mismatch {
        /// The blob the message names.
        expected: BlobId,
        /// The id of what arrived.
        got: BlobId,
    },
    /// No message with this id is stored here.
    #[error("no message {0} here")]
    UnknownMessage(EnvelopeId),
    /// The message carries no media.
    #[error("message {0} is not a media message")]
    NotMedia(EnvelopeId),
    /// The sender sealed the file in chunks this version does not open.
    #[error(
        "the file was sealed in chunks of {0} bytes; this version opens only {MEDIA_CHUNK_TEXT}"
    )]
    ChunkSize(u32),
    /// The file is larger than a blob may be.
    #[error("{size} bytes is more than the {max} a media file may have")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The path names no file.
    #[error("{0} is not a file name")]
    NoFileName(PathBuf),
}

/// The chunk size this version opens, for the error text.
const MEDIA_CHUNK_TEXT: &str = "65536";

impl MediaError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
        move |source| MediaError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// What a file is and its MIME type, from its extension.
pub fn kind_of(path: &Path) -> (MediaKind, &'static str) {
    let extension = path
        .extension()
        .map(|extension| extension.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mime = match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    };
    (kind_of_mime(mime), mime)
}

/// What a MIME type is.
pub fn kind_of_mime(mime: &str) -> MediaKind {
    match mime.split('/').next() {
        Some("image") => MediaKind::Image,
        Some("video") => MediaKind::Video,
        Some("audio") => MediaKind::Audio,
        _ => MediaKind::File,
    }
}

/// How a media message is shown: `[photo] name (size) caption`.
pub fn describe(media: &tidings_protocol::media::MediaMessage) -> String {
    let kind = match media.kind {
        MediaKind::Image => "photo",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::File => "file",
    };
    let mut line = format!("[{kind}] {} ({})", media.name, human_size(media.size));
    if let Some(caption) = &media.caption {
        line.push(' ');
        line.push_str(caption);
    }
    line
}

/// A byte count for people: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_extensions_and_sizes_read_well() {
        assert_eq!(
            kind_of(Path::new("a/B.JPG")),
            (MediaKind::Image, "image/jpeg")
        );
        assert_eq!(kind_of(Path::new("clip.mp4")).0, MediaKind::Video);
        assert_eq!(kind_of(Path::new("song.mp3")).0, MediaKind::Audio);
        assert_eq!(
            kind_of(Path::new("notes")),
            (MediaKind::File, "application/octet-stream")
        );
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
