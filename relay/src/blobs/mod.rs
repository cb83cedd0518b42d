//! Media blobs: encrypted files devices upload and download over `/tidings/blob/1`, held once
//! per relay however many envelopes name them.
//!
//! [`BlobStore`] pairs the files (`files.rs`, always touched on the blocking pool) with their
//! metadata (rows committed by the store's writer, `store/media.rs`). A file becomes visible
//! only whole and hash-checked: fsync, rename, fsync the directory, then the row. Garbage
//! collection drops the row first, then the file (`gc.rs`). `transfer.rs` serves the streams
//! (`upload.rs`, `download.rs`); `fetch.rs` gets blobs held by other relays.

mod download;
mod fetch;
mod files;
mod gc;
mod transfer;
mod upload;

use std::{
    collections::HashSet,
    path::Path,
    sync::{Arc, Mutex},
};

use tidings_protocol::{BlobId, UserId};

use crate::{config::BlobsConfig, metrics::Metrics, store::Store};
pub(crate) use fetch::Fetcher;
use files::BlobFiles;
#[cfg(feature = "test-utils")]
pub(crate) use gc::collect_garbage;
pub(crate) use gc::{run_gc, start_up_cleanup};
pub(crate) use transfer::{BlobContext, BlobHandler};

/// Other relays tracked at once by the byte rate of blob fetches served to them.
const MAX_TRACKED_FETCHING_RELAYS: usize = 4096;

/// The KiB-per-second bucket each other relay fetching blobs from here gets (a burst of at
/// least one data frame).
pub(crate) fn relay_byte_rate(config: &BlobsConfig) -> crate::ingest::RateLimiter<libp2p::PeerId> {
    let kib_per_sec = config.federation_bytes_per_sec.div_ceil(1024).max(1);
    let frame_kib = tidings_protocol::blob::MAX_BLOB_DATA_BYTES.div_ceil(1024) as u64;
    crate::ingest::RateLimiter::new(
        kib_per_sec,
        kib_per_sec.max(frame_kib),
        MAX_TRACKED_FETCHING_RELAYS,
    )
}

/// Why a blob operation failed on the relay's side.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlobError {
    /// File I/O failed.
    #[error("blob file {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// What failed.
        source: std::io::Error,
    },
    /// The metadata could not be read or committed.
    #[error(transparent)]
    Store(#[from] tidings_protocol::store::StoreError),
    /// A blocking task did not finish (the runtime is shutting down).
    #[error("a blocking blob task did not finish")]
    Blocking,
}

impl BlobError {
    fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| BlobError::Io { what, source }
    }
}

/// The relay's media blobs: files, metadata, limits, and who is uploading what.
#[derive(Clone)]
pub(crate) struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    files: BlobFiles,
    store: Store,
    config: BlobsConfig,
    metrics: Arc<Metrics>,
    /// Uploads being served now (one stream per user and blob at a time).
    active: Mutex<HashSet<(UserId, BlobId)>>,
    /// Held while a blob file and its row appear or disappear together, so garbage
    /// collection never deletes the file of a blob published meanwhile.
    publishing: tokio::sync::Mutex<()>,
}

/// An upload being served; the slot frees when dropped.
pub(crate) struct ActiveUpload {
    blobs: BlobStore,
    key: (UserId, BlobId),
}

impl Drop for ActiveUpload {
    fn drop(&mut self) {
        self.blobs.active().remove(&self.key);
    }
}

impl BlobStore {
    /// The blob store of `data_dir` (its directories created if missing).
    pub fn open(
        data_dir: &Path,
        store: Store,
        config: BlobsConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BlobError> {
        let files = BlobFiles::open(data_dir).map_err(BlobError::io("creating the directories"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                files,
                store,
                config,
                metrics,
                active: Mutex::new(HashSet::new()),
                publishing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashSet<(UserId, BlobId)>> {
        self.inner
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Marks `user`'s upload of `id` as being served; None if a stream serves it already.
    pub fn claim_upload(&self, user: UserId, id: BlobId) -> Option<ActiveUpload> {
        let key = (user, id);
        self.active().insert(key).then(|| ActiveUpload {
            blobs: self.clone(),
            key,
        })
    }

    /// Whether a stream serves `user`'s upload of `id` now.
    pub fn is_uploading(&self, user: UserId, id: BlobId) -> bool {
        self.active().contains(&(user, id))
    }

    /// The limits.
    pub fn config(&self) -> &BlobsConfig {
        &self.inner.config
    }

    /// The metadata store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The relay's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Runs file work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&BlobFiles) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, BlobError> {
        let files = self.inner.files.clone();
        tokio::task::spawn_blocking(move || work(&files))
            .await
            .map_err(|_| BlobError::Blocking)?
            .map_err(BlobError::io(what))
    }

    /// Makes a verified upload the blob `id`: its file renamed into place (durably), then
    /// its row committed.
    pub async fn publish(
        &self,
        partial: files::Partial,
        user: UserId,
        id: BlobId,
    ) -> Result<(), BlobError> {
        let size = partial.have;
        let _publishing = self.inner.publishing.lock().await;
        self.blocking("publishing", move |files| {
            files.publish(partial.file, &user, &id)
        })
        .await?;
        self.inner
            .store
            .finish_media_upload(user, id, size, self.inner.config.grace_ms())
            .await?;
        self.inner.metrics.blobs.stored_one(size);
        Ok(())
    }

    /// Syncs a partial upload and records its durable length (a resume starts there).
    pub async fn record_partial(
        &self,
        partial: files::Partial,
        user: UserId,
        id: BlobId,
    ) -> Result<files::Partial, BlobError> {
        let partial = self
            .blocking("syncing a partial upload", move |_| {
                partial.file.sync_data().map(|()| partial)
            })
            .await?;
        self.inner
            .store
            .media_upload_progress(user, id, partial.have)
            .await?;
        Ok(partial)
    }

    /// Forgets `user`'s upload of `id`: its row (giving the charge back), then its file.
    pub async fn drop_upload(&self, user: UserId, id: BlobId) -> Result<(), BlobError> {
        self.inner.store.drop_media_upload(user, id).await?;
        self.blocking("deleting a partial upload", move |files| {
            files.delete_partial(&user, &id)
        })
        .await
    }

    /// Forgets whole blobs (row first, then file): those still collectable after
    /// `retention_ms` if given, else all. Returns how many went.
    pub async fn drop_blobs(
        &self,
        ids: Vec<BlobId>,
        retention_ms: Option<u64>,
    ) -> Result<usize, BlobError> {
        let _publishing = self.inner.publishing.lock().await;
        let dropped = self.inner.store.drop_media_blobs(ids, retention_ms).await?;
        let count = dropped.len();
        self.blocking("deleting blobs", move |files| {
            for id in &dropped {
                files.delete_blob(id)?;
            }
            Ok(())
        })
        .await?;
        Ok(count)
    }
}
