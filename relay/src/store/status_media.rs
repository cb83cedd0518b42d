//! Media references held by statuses (the `status_media` table): a status stored in
//! `status.redb` counts one reference to each blob it shows until it expires.
//!
//! The references live here, next to the counts, keyed by the status's expiry and id, so
//! holding and releasing are idempotent (a repeat finds the entry there or gone) and the
//! release at expiry needs nothing from the status file: every relay holding a status
//! releases its blobs at expiry even if the status was never fetched.

use redb::{ReadableDatabase, ReadableTable};
use tidings_protocol::{BlobId, EnvelopeId, codec, status::MAX_STATUS_BLOBS, store::StoreError};

use super::{
    Store,
    tables::MEDIA_REFS,
    txn::{Tables, corrupt},
};

/// Most expired statuses' references one transaction releases (the caller loops).
pub const MAX_MEDIA_RELEASE_BATCH: usize = 256;

/// Largest `status_media` value (a CBOR list of blob ids at its bound).
const MAX_STATUS_MEDIA_BYTES: usize = MAX_STATUS_BLOBS * 40 + 16;

fn key(expires_at_ms: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(&expires_at_ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn decode(bytes: &[u8]) -> Result<Vec<BlobId>, StoreError> {
    let ids: Vec<BlobId> = codec::decode(bytes, MAX_STATUS_MEDIA_BYTES)
        .map_err(|error| corrupt("status_media", error))?;
    Ok(ids)
}

impl Tables<'_> {
    /// Counts a reference to each of `blobs` for the status `id` (once: false if held).
    fn hold_status_media(
        &mut self,
        id: &EnvelopeId,
        expires_at_ms: u64,
        blobs: &[BlobId],
    ) -> Result<bool, StoreError> {
        let key = key(expires_at_ms, id);
        if blobs.is_empty() || self.status_media.get(key.as_slice())?.is_some() {
            return Ok(false);
        }
        let blobs: Vec<BlobId> = blobs.iter().take(MAX_STATUS_BLOBS).copied().collect();
        self.status_media
            .insert(key.as_slice(), codec::encode(&blobs).as_slice())?;
        self.reference_media(&blobs)?;
        Ok(true)
    }

    /// Releases what status `key` holds (false if nothing).
    fn release_status_media(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let Some(bytes) = self.status_media.remove(key)? else {
            return Ok(false);
        };
        let blobs = decode(bytes.value())?;
        drop(bytes);
        self.release_media(&blobs)?;
        Ok(true)
    }

    /// Releases the references of up to [`MAX_MEDIA_RELEASE_BATCH`] statuses expired at
    /// `now_ms`; how many.
    fn release_expired_status_media(&mut self, now_ms: u64) -> Result<usize, StoreError> {
        let end = key(now_ms.saturating_add(1), &EnvelopeId::from_bytes([0; 16]));
        let due: Vec<Vec<u8>> = self
            .status_media
            .range(..end.as_slice())?
            .take(MAX_MEDIA_RELEASE_BATCH)
            .map(|entry| entry.map(|(key, _)| key.value().to_vec()))
            .collect::<Result<_, _>>()?;
        for key in &due {
            self.release_status_media(key)?;
        }
        Ok(due.len())
    }
}

impl Store {
    /// Counts a reference to each of `blobs` for status `id` until it expires; true if this
    /// call added them (false: held already, or no blobs).
    pub async fn hold_status_media(
        &self,
        id: EnvelopeId,
        expires_at_ms: u64,
        blobs: Vec<BlobId>,
    ) -> Result<bool, StoreError> {
        self.write(1, move |t| t.hold_status_media(&id, expires_at_ms, &blobs))
            .await
    }

    /// Releases what status `id` holds now (a status that was not stored after all).
    pub async fn release_status_media(
        &self,
        id: EnvelopeId,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        let key = key(expires_at_ms, &id);
        self.write(1, move |t| t.release_status_media(&key)).await
    }

    /// Releases the references of statuses expired at `now_ms` (a batch; the caller
    /// loops while a full batch comes back); how many statuses.
    pub async fn release_expired_status_media(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.write(1, move |t| t.release_expired_status_media(now_ms))
            .await
    }

    /// How many stored things (envelopes, profiles, statuses) reference blob `id`.
    pub async fn media_refs_of(&self, id: BlobId) -> Result<u64, StoreError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let refs = txn.open_table(MEDIA_REFS)?;
            Ok(refs.get(id.as_bytes())?.map_or(0, |refs| refs.value()))
        })
        .await
    }
}
