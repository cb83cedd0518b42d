//! Sending a file (seal, upload or reuse an earlier upload, queue the media message),
//! forwarding one by reference, and saving a received one (download, check, open).

use std::path::{Path, PathBuf};

use tidings_keys::media::{MediaKey, cipher_size};
use tidings_protocol::{
    BlobId, BlobRef, EnvelopeId, ErrorCode,
    blob::MAX_BLOB_BYTES,
    limits::MAX_TEXT_BYTES,
    media::{MAX_MEDIA_NAME_BYTES, MEDIA_CHUNK, MediaKind, MediaMessage},
};

use super::{
    INCOMING_DIR, MediaError, OUTGOING_DIR,
    crypt::{blob_id_of, open_file, plain_digest, seal_file},
    kind_of,
    thumbnail::thumbnail,
    transfer::{BlobLink, Progress, TransferError},
};
use crate::{
    client::{Client, relay_peer},
    error::ClientError,
    runtime::files,
    session::Session,
    store::{MessageRecord, tables::UploadRecord},
};

/// What sending a file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFile {
    /// The message, with its status (✓ once the relay holds it).
    pub record: MessageRecord,
    /// Whether the file's bytes went up now (false: an earlier upload was reused).
    pub uploaded: bool,
}

/// A file sealed for sending, found or made.
struct Prepared {
    digest: [u8; 32],
    record: UploadRecord,
    sealed: PathBuf,
}

impl Client {
    /// The way to the home relay's blob protocol.
    pub(crate) async fn blob_link(&self) -> Result<BlobLink, ClientError> {
        let address = self.relay_addr()?.ok_or(ClientError::NotRegistered)?;
        let relay = relay_peer(&address).ok_or(ClientError::NotRegistered)?;
        let network = self.network().await?.clone();
        Ok(BlobLink::new(network, relay, address))
    }

    /// Runs file work on the blocking pool.
    async fn blocking_files<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ClientError> {
        let client = self.clone();
        crate::runtime::spawn_blocking(move || work(&client))
            .await
            .map_err(|_| ClientError::Cancelled)?
    }

    /// Seals `path` under a fresh key and uploads it to the home relay, or reuses an
    /// earlier upload of the same bytes (an interrupted one resumes); returns the media
    /// message to send and whether bytes went up now.
    pub async fn upload_file(
        &self,
        path: &Path,
        caption: Option<&str>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(MediaMessage, bool), ClientError> {
        if let Some(caption) = caption
            && caption.len() > MAX_TEXT_BYTES
        {
            return Err(ClientError::TextTooLong(caption.len()));
        }
        let name = file_name(path)?;
        let (kind, mime) = kind_of(path);
        let link = self.blob_link().await?;
        let relay = link.relay().to_string();
        let mut prepared = prepare(self, path, relay).await?;
        let thumbnail = match kind {
            MediaKind::Image => image_thumbnail(path).await,
            _ => None,
        };
        let describe = Describe {
            name,
            kind,
            mime,
            thumbnail,
            caption: caption.map(str::to_string),
        };
        if prepared.record.uploaded {
            let blob = &prepared.record.blob;
            if link
                .holds(blob.id, blob.size)
                .await
                .map_err(MediaError::from)?
            {
                let size = blob.size;
                progress(Progress::moved(size, size));
                let mut record = prepared.record;
                // Held by the home relay of now, whichever relay it first went to.
                record.blob.relay = link.relay().to_string();
                return Ok((describe.message(record), false));
            }
            // Gone from the relay since (collected): sealed again under the same key, the
            // file gives the same bytes, and goes up again.
            let relay = link.relay().to_string();
            prepared = reseal(self, path, prepared, relay).await?;
        }
        let blob = &prepared.record.blob;
        if let Err(error) = link
            .upload(&prepared.sealed, blob.id, blob.size, progress)
            .await
        {
            if let TransferError::Refused(answer) = &error
                && answer.code == ErrorCode::HashMismatch
            {
                // The sealed copy on disk is not what was recorded: seal anew next time.
                let _ = files::remove_file(&prepared.sealed).await;
            }
            return Err(MediaError::from(error).into());
        }
        let Prepared {
            digest,
            mut record,
            sealed,
        } = prepared;
        record.uploaded = true;
        let done = record.clone();
        self.blocking_files(move |client| Ok(client.store().save_upload(&digest, &done)?))
            .await?;
        // The relay holds it now; a later send of the file reuses the blob.
        let _ = files::remove_file(&sealed).await;
        Ok((describe.message(record), true))
    }

    /// Downloads, checks and opens the media of message `id` into `path` (a directory:
    /// the file's own name inside it); returns where it was saved. Resumes an interrupted
    /// download; the file appears only once whole and verified.
    pub async fn save_media(
        &self,
        id: EnvelopeId,
        path: &Path,
        progress: impl FnMut(Progress) + Send,
    ) -> Result<PathBuf, ClientError> {
        let media = self
            .blocking_files(move |client| client.media_of(id))
            .await?;
        let target = if files::is_dir(path).await {
            let (dir, name, blob) = (path.to_path_buf(), media.name.clone(), media.blob.id);
            self.blocking_files(move |_| Ok(free_name_in(&dir, &name, &blob)))
                .await?
        } else {
            path.to_path_buf()
        };
        self.save_media_to(media, target, progress).await
    }

    /// Downloads, checks and opens `media` into the file `target`; returns `target`.
    pub(crate) async fn save_media_to(
        &self,
        media: MediaMessage,
        target: PathBuf,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<PathBuf, ClientError> {
        if media.chunk != MEDIA_CHUNK {
            return Err(MediaError::ChunkSize(media.chunk).into());
        }
        let blob = media.blob.id;
        let incoming = self.data_dir().join(INCOMING_DIR);
        files::create_dir_all(&incoming)
            .await
            .map_err(MediaError::io(&incoming))?;
        let partial = incoming.join(format!("{blob}.part"));
        // A download resumed from a partial file that does not fit the rest (a write of a
        // cancelled save that landed late) fails the id check: it is fetched whole once more.
        let resumed = files::size_of(&partial)
            .await
            .is_ok_and(|size| size.is_some_and(|size| size > 0));
        let link = self.blob_link().await?;
        let home = link.relay().to_string();
        let origin = (media.blob.relay != home).then(|| media.blob.relay.clone());
        for last_try in [!resumed, true] {
            link.download(
                media.blob.id,
                origin.clone(),
                media.blob.size,
                &partial,
                &mut progress,
            )
            .await
            .map_err(MediaError::from)?;
            let opened = check_and_open(&media, &partial, &target).await;
            // Whole and checked, or not this blob: either way a retry downloads anew.
            let _ = files::remove_file(&partial).await;
            match opened {
                Err(MediaError::Mismatch { .. }) if !last_try => {
                    tracing::debug!(blob = %media.blob.id, "a resumed download did not match; fetching it whole");
                }
                opened => {
                    opened?;
                    break;
                }
            }
        }
        Ok(target)
    }

    /// Uploads the file at `path` as [`Session::send_file`] does and queues its media
    /// message to `who` (a contact or a group), sent on the next flush.
    pub async fn queue_file(
        &self,
        who: &str,
        path: &Path,
        caption: Option<&str>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<SentFile, ClientError> {
        let conversation = self.conversation(who)?;
        let (media, uploaded) = self.upload_file(path, caption, progress).await?;
        let me = self.user_id();
        let record = self
            .blocking(move |inner| inner.store.queue_media(me, conversation, media))
            .await?;
        Ok(SentFile { record, uploaded })
    }

    /// The media of a stored message.
    pub(crate) fn media_of(&self, id: EnvelopeId) -> Result<MediaMessage, ClientError> {
        let record = self
            .store()
            .message(&id)?
            .ok_or(MediaError::UnknownMessage(id))?;
        Ok(*record.media.ok_or(MediaError::NotMedia(id))?)
    }
}

impl Session {
    /// Sends the file at `path` to `who` (a contact or a group), with an optional caption:
    /// seals it, uploads it to the home relay (or reuses an earlier upload of the same
    /// file), then sends the media message. `progress` follows the upload.
    pub async fn send_file(
        &mut self,
        who: &str,
        path: &Path,
        caption: Option<&str>,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<SentFile, ClientError> {
        let SentFile { record, uploaded } = self
            .client()
            .queue_file(who, path, caption, &mut progress)
            .await?;
        let record = self.flush_and_find(record).await?;
        Ok(SentFile { record, uploaded })
    }

    /// Forwards the media of message `id` to `who` (a contact or a group): the same blob
    /// and key, nothing uploaded again.
    pub async fn forward(
        &mut self,
        id: EnvelopeId,
        who: &str,
    ) -> Result<MessageRecord, ClientError> {
        let conversation = self.client().conversation(who)?;
        let me = self.client().user_id();
        let record = self
            .client()
            .blocking_files(move |client| {
                let media = client.media_of(id)?;
                Ok(client.store().queue_media(me, conversation, media)?)
            })
            .await?;
        self.flush_and_find(record).await
    }
}

/// Finds or makes the sealed file for `input`.
async fn prepare(client: &Client, input: &Path, relay: String) -> Result<Prepared, ClientError> {
    let outgoing = client.data_dir().join(OUTGOING_DIR);
    files::create_dir_all(&outgoing)
        .await
        .map_err(MediaError::io(&outgoing))?;
    let (digest, plain_size) = plain_digest(input).await?;
    if cipher_size(plain_size) > MAX_BLOB_BYTES {
        return Err(MediaError::TooLarge {
            size: plain_size,
            max: MAX_BLOB_BYTES,
        }
        .into());
    }
    let sealed = outgoing.join(format!("{}.blob", BlobId::from_bytes(digest)));
    let held = client
        .blocking_files(move |client| Ok(client.store().upload_record(&digest)?))
        .await?;
    if let Some(mut record) = held {
        let sealed_whole = files::size_of(&sealed)
            .await
            .is_ok_and(|size| size == Some(record.blob.size));
        if !record.uploaded && sealed_whole {
            // Resumed at the home relay of now (it may have moved since).
            record.blob.relay = relay;
            return Ok(Prepared {
                digest,
                record,
                sealed,
            });
        }
        if record.uploaded {
            return Ok(Prepared {
                digest,
                record,
                sealed,
            });
        }
    }
    let key = MediaKey::generate();
    let made = seal_file(&key, input, &sealed).await?;
    let record = UploadRecord {
        blob: BlobRef {
            id: made.blob,
            relay,
            size: made.cipher_size,
        },
        key: *key.key_bytes(),
        nonce: *key.nonce(),
        plain_size: made.plain_size,
        uploaded: false,
    };
    save_upload(client, digest, &record).await?;
    Ok(Prepared {
        digest,
        record,
        sealed,
    })
}

/// Seals an uploaded file again under its recorded key, for uploading it once more; the
/// upload record goes back to "not uploaded".
async fn reseal(
    client: &Client,
    input: &Path,
    prepared: Prepared,
    relay: String,
) -> Result<Prepared, ClientError> {
    let Prepared {
        digest,
        mut record,
        sealed,
    } = prepared;
    let key = MediaKey::from_parts(record.key, record.nonce);
    let made = seal_file(&key, input, &sealed).await?;
    record.blob = BlobRef {
        id: made.blob,
        relay,
        size: made.cipher_size,
    };
    record.plain_size = made.plain_size;
    record.uploaded = false;
    save_upload(client, digest, &record).await?;
    Ok(Prepared {
        digest,
        record,
        sealed,
    })
}

/// Records the sealed upload of the file with plaintext hash `digest`.
async fn save_upload(
    client: &Client,
    digest: [u8; 32],
    record: &UploadRecord,
) -> Result<(), ClientError> {
    let record = record.clone();
    client
        .blocking_files(move |client| Ok(client.store().save_upload(&digest, &record)?))
        .await
}

/// A thumbnail of the image at `path`, made in a blocking job (None if it cannot be read).
async fn image_thumbnail(path: &Path) -> Option<Vec<u8>> {
    let file = files::open_sync(path).await.ok()?;
    let path = path.to_path_buf();
    crate::runtime::spawn_blocking(move || thumbnail(file, &path))
        .await
        .ok()
        .flatten()
}

/// Checks downloaded ciphertext against the blob id and opens it into `target`.
async fn check_and_open(
    media: &MediaMessage,
    partial: &Path,
    target: &Path,
) -> Result<(), MediaError> {
    let got = blob_id_of(partial).await?;
    if got != media.blob.id {
        return Err(MediaError::Mismatch {
            expected: media.blob.id,
            got,
        });
    }
    let key = MediaKey::from_parts(media.key, media.nonce);
    open_file(&key, partial, target).await?;
    Ok(())
}

/// What a media message says about its file, besides the blob and key.
struct Describe {
    name: String,
    kind: MediaKind,
    mime: &'static str,
    thumbnail: Option<Vec<u8>>,
    caption: Option<String>,
}

impl Describe {
    /// The media message for a sealed, uploaded file.
    fn message(self, record: UploadRecord) -> MediaMessage {
        MediaMessage {
            blob: record.blob,
            key: record.key,
            nonce: record.nonce,
            chunk: MEDIA_CHUNK,
            size: record.plain_size,
            name: self.name,
            mime: self.mime.to_string(),
            kind: self.kind,
            thumbnail: self.thumbnail,
            caption: self.caption,
        }
    }
}

/// Most " (n)" suffixes tried for a name taken in the directory.
const MAX_NAME_TRIES: u32 = 1000;

/// Where a received file is saved in `dir` under the name its sender gave: never a hidden
/// file (a sender must not plant `.bashrc` in a home directory), never over an existing
/// file (`photo (1).jpg` instead).
pub(crate) fn free_name_in(dir: &Path, name: &str, blob: &BlobId) -> PathBuf {
    let shown = name.trim_start_matches('.').trim();
    let fallback = format!("file-{}", &blob.to_string()[..8]);
    let name = if shown.is_empty() {
        fallback.as_str()
    } else {
        shown
    };
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let mut candidate = dir.join(name);
    let mut number = 1;
    while candidate.symlink_metadata().is_ok() && number <= MAX_NAME_TRIES {
        candidate = dir.join(format!("{stem} ({number}){extension}"));
        number += 1;
    }
    candidate
}

/// The file's name, cut to what a media message carries.
fn file_name(path: &Path) -> Result<String, MediaError> {
    let name = path
        .file_name()
        .ok_or_else(|| MediaError::NoFileName(path.to_path_buf()))?
        .to_string_lossy()
        .replace(['\\', '\0'], "_");
    let mut end = name.len().min(MAX_MEDIA_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Ok(name[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_name_is_never_hidden_and_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let blob = BlobId::of(b"x");
        let at = |name: &str| free_name_in(dir.path(), name, &blob);
        assert_eq!(at("photo.jpg"), dir.path().join("photo.jpg"));
        assert_eq!(at(".bashrc"), dir.path().join("bashrc"));
        let fallback = at("..");
        assert!(fallback.starts_with(dir.path()));
        assert!(
            fallback
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("file-")
        );
        std::fs::write(dir.path().join("photo.jpg"), b"mine").unwrap();
        assert_eq!(at("photo.jpg"), dir.path().join("photo (1).jpg"));
        std::fs::write(dir.path().join("photo (1).jpg"), b"mine too").unwrap();
        assert_eq!(at("photo.jpg"), dir.path().join("photo (2).jpg"));
        std::fs::write(dir.path().join("notes"), b"mine").unwrap();
        assert_eq!(at("notes"), dir.path().join("notes (1)"));
    }
}
