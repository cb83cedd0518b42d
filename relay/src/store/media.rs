//! Media blob metadata: whole blobs, uploads in progress, bytes charged per account, and the
//! references stored envelopes hold, all committed by the store's writer.
//!
//! The files themselves are `crate::blobs`'s; this side only ever commits a row after its
//! file is durable (or drops a row before its file goes), so no row names a missing file.

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use tidings_protocol::{BlobId, UserId, codec, store::StoreError};

use super::{
    Store,
    tables::{self, MEDIA_BLOBS, MEDIA_BYTES, MEDIA_REFS, MEDIA_UPLOADS},
    txn::{Tables, corrupt},
};

/// Largest media metadata record we expect to read back.
const MAX_MEDIA_RECORD: usize = 256;

/// A whole media blob held here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaBlob {
    /// Ciphertext bytes.
    #[serde(rename = "s")]
    pub size: u64,
    /// When the last stored envelope naming it went (or when it was stored).
    #[serde(rename = "u")]
    pub unreferenced_since_ms: u64,
    /// Until when the finished upload itself counts as a reference (the sender's time to
    /// send the message naming it).
    #[serde(rename = "g")]
    pub grace_until_ms: u64,
    /// The account that uploaded it first (charged for its bytes).
    #[serde(rename = "b")]
    pub uploaded_by: UserId,
}

impl MediaBlob {
    /// Whether garbage collection may delete it at `now_ms`, with `refs` stored envelopes
    /// naming it, after `retention_ms` unused.
    pub fn collectable(&self, refs: u64, now_ms: u64, retention_ms: u64) -> bool {
        let unused_since = self.unreferenced_since_ms.max(self.grace_until_ms);
        refs == 0 && now_ms >= unused_since.saturating_add(retention_ms)
    }
}

/// An upload in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUpload {
    /// The size the device declared (charged to its account).
    #[serde(rename = "s")]
    pub size: u64,
    /// Bytes of the partial file known durable.
    #[serde(rename = "h")]
    pub have: u64,
    /// When it started.
    #[serde(rename = "t")]
    pub started_ms: u64,
}

/// What an upload request finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStart {
    /// The blob is held whole already: nothing to send, nothing charged.
    Stored,
    /// Send from `have` (0 for a new upload, charged now).
    Ready {
        /// Bytes of the partial copy known durable.
        have: u64,
    },
    /// The account's quota has no room for it; nothing was charged.
    OverQuota {
        /// Bytes the account holds now.
        held: u64,
    },
}

/// Every media row, for start-up cleanup and garbage collection.
#[derive(Debug, Default)]
pub struct MediaIndex {
    /// Whole blobs, with how many stored envelopes name each.
    pub blobs: Vec<(BlobId, MediaBlob, u64)>,
    /// Uploads in progress.
    pub uploads: Vec<(UserId, BlobId, MediaUpload)>,
}

/// Decodes a `media_blobs` value (reached by the fuzz checks through the store module).
pub(crate) fn decode_media_blob(bytes: &[u8]) -> Result<MediaBlob, StoreError> {
    decode("media_blobs", bytes)
}

/// Decodes a `media_uploads` value.
pub(crate) fn decode_media_upload(bytes: &[u8]) -> Result<MediaUpload, StoreError> {
    decode("media_uploads", bytes)
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes, MAX_MEDIA_RECORD).map_err(|error| corrupt(table, error))
}

impl Tables<'_> {
    pub(super) fn media_blob(&self, id: &BlobId) -> Result<Option<MediaBlob>, StoreError> {
        match self.media_blobs.get(id.as_bytes())? {
            Some(bytes) => decode_media_blob(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn put_media_blob(
        &mut self,
        id: &BlobId,
        blob: &MediaBlob,
    ) -> Result<(), StoreError> {
        self.media_blobs
            .insert(id.as_bytes(), codec::encode(blob).as_slice())?;
        Ok(())
    }

    fn media_upload(&self, user: &UserId, id: &BlobId) -> Result<Option<MediaUpload>, StoreError> {
        match self
            .media_uploads
            .get(&tables::media_upload_key(user, id))?
        {
            Some(bytes) => decode_media_upload(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    fn media_held(&self, user: &UserId) -> Result<u64, StoreError> {
        Ok(self
            .media_bytes
            .get(user.as_bytes())?
            .map(|held| held.value())
            .unwrap_or(0))
    }

    /// Adds `add` bytes to and takes `remove` bytes from `user`'s media account.
    fn charge_media(&mut self, user: &UserId, add: u64, remove: u64) -> Result<(), StoreError> {
        let held = self
            .media_held(user)?
            .saturating_add(add)
            .saturating_sub(remove);
        if held == 0 {
            self.media_bytes.remove(user.as_bytes())?;
        } else {
            self.media_bytes.insert(user.as_bytes(), held)?;
        }
        Ok(())
    }

    fn begin_media_upload(
        &mut self,
        user: &UserId,
        id: &BlobId,
        size: u64,
        quota: u64,
        grace_ms: u64,
    ) -> Result<UploadStart, StoreError> {
        if let Some(mut blob) = self.media_blob(id)? {
            // The second sender needs the same time to send its message as the first did.
            blob.grace_until_ms = blob
                .grace_until_ms
                .max(self.now_ms.saturating_add(grace_ms));
            self.put_media_blob(id, &blob)?;
            return Ok(UploadStart::Stored);
        }
        if let Some(upload) = self.media_upload(user, id)? {
            if upload.size == size {
                return Ok(UploadStart::Ready { have: upload.have });
            }
            // Another size for the same id: the earlier upload was not this blob.
            self.drop_media_upload(user, id)?;
        }
        let held = self.media_held(user)?;
        if held.saturating_add(size) > quota {
            return Ok(UploadStart::OverQuota { held });
        }
        let upload = MediaUpload {
            size,
            have: 0,
            started_ms: self.now_ms,
        };
        self.media_uploads.insert(
            &tables::media_upload_key(user, id),
            codec::encode(&upload).as_slice(),
        )?;
        self.charge_media(user, size, 0)?;
        Ok(UploadStart::Ready { have: 0 })
    }

    fn media_upload_progress(
        &mut self,
        user: &UserId,
        id: &BlobId,
        have: u64,
    ) -> Result<(), StoreError> {
        if let Some(mut upload) = self.media_upload(user, id)? {
            upload.have = have.min(upload.size);
            self.media_uploads.insert(
                &tables::media_upload_key(user, id),
                codec::encode(&upload).as_slice(),
            )?;
        }
        Ok(())
    }

    /// Forgets an upload and gives its charge back; whether there was one.
    pub(super) fn drop_media_upload(
        &mut self,
        user: &UserId,
        id: &BlobId,
    ) -> Result<bool, StoreError> {
        let Some(upload) = self.media_upload(user, id)? else {
            return Ok(false);
        };
        self.media_uploads
            .remove(&tables::media_upload_key(user, id))?;
        self.charge_media(user, 0, upload.size)?;
        Ok(true)
    }

    /// Turns a verified upload (its file already renamed into place) into a whole blob.
    fn finish_media_upload(
        &mut self,
        user: &UserId,
        id: &BlobId,
        size: u64,
        grace_ms: u64,
    ) -> Result<(), StoreError> {
        let upload = self.media_upload(user, id)?;
        self.media_uploads
            .remove(&tables::media_upload_key(user, id))?;
        if self.media_blob(id)?.is_some() {
            // Someone else's upload of the same bytes finished first: they are charged.
            if let Some(upload) = upload {
                self.charge_media(user, 0, upload.size)?;
            }
            return Ok(());
        }
        if upload.is_none() {
            // The upload expired meanwhile: charge the whole blob now.
            self.charge_media(user, size, 0)?;
        }
        let blob = MediaBlob {
            size,
            unreferenced_since_ms: self.now_ms,
            grace_until_ms: self.now_ms.saturating_add(grace_ms),
            uploaded_by: *user,
        };
        self.put_media_blob(id, &blob)
    }

    /// Forgets a whole blob and gives its uploader's charge back.
    fn drop_media_blob(&mut self, id: &BlobId) -> Result<Option<MediaBlob>, StoreError> {
        let Some(blob) = self.media_blob(id)? else {
            return Ok(None);
        };
        self.media_blobs.remove(id.as_bytes())?;
        self.charge_media(&blob.uploaded_by, 0, blob.size)?;
        Ok(Some(blob))
    }

    /// The blobs the envelope in `bytes` names, read once for the same bytes pushed to
    /// many mailboxes in a row.
    pub(super) fn named_in(&mut self, bytes: &bytes::Bytes) -> Vec<BlobId> {
        if let Some((held, ids)) = &self.media_named
            && held.as_ptr() == bytes.as_ptr()
            && held.len() == bytes.len()
        {
            return ids.clone();
        }
        let ids = named_blobs(bytes);
        self.media_named = Some((bytes.clone(), ids.clone()));
        ids
    }

    /// Stored envelopes naming blob `id` (held here or not).
    pub(super) fn media_refs(&self, id: &BlobId) -> Result<u64, StoreError> {
        Ok(self
            .media_refs
            .get(id.as_bytes())?
            .map(|refs| refs.value())
            .unwrap_or(0))
    }

    /// Adds one reference to each of `ids`, held here or not yet (a blob fetched or
    /// uploaded later finds the envelopes already naming it).
    pub(super) fn reference_media(&mut self, ids: &[BlobId]) -> Result<(), StoreError> {
        for id in ids {
            let refs = self.media_refs(id)?.saturating_add(1);
            self.media_refs.insert(id.as_bytes(), refs)?;
        }
        Ok(())
    }

    /// Takes one reference from each of `ids`; the last one of a held blob starts its
    /// retention clock.
    pub(super) fn release_media(&mut self, ids: &[BlobId]) -> Result<(), StoreError> {
        for id in ids {
            let refs = self.media_refs(id)?.saturating_sub(1);
            if refs > 0 {
                self.media_refs.insert(id.as_bytes(), refs)?;
                continue;
            }
            self.media_refs.remove(id.as_bytes())?;
            if let Some(mut blob) = self.media_blob(id)? {
                blob.unreferenced_since_ms = self.now_ms;
                self.put_media_blob(id, &blob)?;
            }
        }
        Ok(())
    }
}

/// The media blobs the envelope in `bytes` names in its header (none if it does not decode:
/// the relay checked what it stored when it took it).
pub(super) fn named_blobs(bytes: &[u8]) -> Vec<BlobId> {
    // The header names blobs under the key "a" (CBOR 0x61 0x61); an envelope whose bytes
    // hold no such pair names none, and most envelopes are not media: skip decoding them.
    if !bytes.windows(2).any(|pair| pair == [0x61, 0x61]) {
        return Vec::new();
    }
    let raw = tidings_protocol::RawEnvelope::from_bytes(bytes.to_vec());
    match raw.decode_unverified() {
        Ok(envelope) => envelope.blobs.iter().map(|blob| blob.id).collect(),
        Err(_) => Vec::new(),
    }
}

fn read_index(db: &Database) -> Result<MediaIndex, StoreError> {
    let txn = db.begin_read()?;
    let mut index = MediaIndex::default();
    let refs = txn.open_table(MEDIA_REFS)?;
    for entry in txn.open_table(MEDIA_BLOBS)?.iter()? {
        let (id, bytes) = entry?;
        let count = refs.get(id.value())?.map(|refs| refs.value()).unwrap_or(0);
        index.blobs.push((
            BlobId::from_bytes(*id.value()),
            decode("media_blobs", bytes.value())?,
            count,
        ));
    }
    for entry in txn.open_table(MEDIA_UPLOADS)?.iter()? {
        let (key, bytes) = entry?;
        let (user, id) = tables::media_upload_of_key(key.value());
        index
            .uploads
            .push((user, id, decode("media_uploads", bytes.value())?));
    }
    Ok(index)
}

impl Store {
    /// Starts (or finds) `user`'s upload of `id`, charging `size` to their account within
    /// `quota` for a new one. A blob held already is kept at least `grace_ms` from now.
    pub async fn begin_media_upload(
        &self,
        user: UserId,
        id: BlobId,
        size: u64,
        quota: u64,
        grace_ms: u64,
    ) -> Result<UploadStart, StoreError> {
        self.write(1, move |t| {
            t.begin_media_upload(&user, &id, size, quota, grace_ms)
        })
        .await
    }

    /// Records that `have` bytes of an upload's partial file are durable.
    pub async fn media_upload_progress(
        &self,
        user: UserId,
        id: BlobId,
        have: u64,
    ) -> Result<(), StoreError> {
        self.write(1, move |t| t.media_upload_progress(&user, &id, have))
            .await
    }

    /// Forgets an upload (hash mismatch, expiry, lost partial) and gives its charge back.
    pub async fn drop_media_upload(&self, user: UserId, id: BlobId) -> Result<bool, StoreError> {
        self.write(1, move |t| t.drop_media_upload(&user, &id))
            .await
    }

    /// Commits a verified upload whose file is in place as a whole blob.
    pub async fn finish_media_upload(
        &self,
        user: UserId,
        id: BlobId,
        size: u64,
        grace_ms: u64,
    ) -> Result<(), StoreError> {
        self.write(1, move |t| {
            t.finish_media_upload(&user, &id, size, grace_ms)
        })
        .await
    }

    /// Forgets whole blobs (their files are deleted after); those still collectable at
    /// `now_ms` after `retention_ms` if `retention_ms` is given, else all. Returns the ones
    /// forgotten.
    pub async fn drop_media_blobs(
        &self,
        ids: Vec<BlobId>,
        retention_ms: Option<u64>,
    ) -> Result<Vec<BlobId>, StoreError> {
        self.write(ids.len(), move |t| {
            let mut dropped = Vec::new();
            for id in ids {
                let Some(blob) = t.media_blob(&id)? else {
                    continue;
                };
                let refs = t.media_refs(&id)?;
                if retention_ms
                    .is_some_and(|retention| !blob.collectable(refs, t.now_ms, retention))
                {
                    continue;
                }
                t.drop_media_blob(&id)?;
                dropped.push(id);
            }
            Ok(dropped)
        })
        .await
    }

    /// The row of a whole blob held here.
    pub async fn media_blob(&self, id: BlobId) -> Result<Option<MediaBlob>, StoreError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(MEDIA_BLOBS)?;
            match table.get(id.as_bytes())? {
                Some(bytes) => decode("media_blobs", bytes.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    /// `user`'s upload of `id` in progress, if any.
    pub async fn media_upload(
        &self,
        user: UserId,
        id: BlobId,
    ) -> Result<Option<MediaUpload>, StoreError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(MEDIA_UPLOADS)?;
            match table.get(&tables::media_upload_key(&user, &id))? {
                Some(bytes) => decode_media_upload(bytes.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    /// Media bytes charged to `user`.
    pub async fn media_held(&self, user: UserId) -> Result<u64, StoreError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(MEDIA_BYTES)?;
            Ok(table
                .get(user.as_bytes())?
                .map(|held| held.value())
                .unwrap_or(0))
        })
        .await
    }

    /// Every media row.
    pub async fn media_index(&self) -> Result<MediaIndex, StoreError> {
        self.read(read_index).await
    }
}
