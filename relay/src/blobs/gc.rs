//! Keeping blob files and rows in step: the start-up cleanup after a crash, and the garbage
//! collection of blobs unreferenced past their retention and of expired uploads.

use std::{collections::HashSet, time::Duration};

use tidings_protocol::{BlobId, now_ms};
use tokio_util::sync::CancellationToken;

use super::{BlobError, BlobStore};

/// What one cleanup or collection pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Whole blobs deleted (row and file).
    pub blobs: usize,
    /// Uploads deleted (row and partial file).
    pub uploads: usize,
    /// Files without a row deleted.
    pub stray_files: usize,
}

/// After a start (before any stream is served): deletes partial files without an upload
/// row and blob files without a blob row (a crash between rename and commit), and drops rows
/// whose file is missing (logged: that should not happen).
pub(crate) async fn start_up_cleanup(blobs: &BlobStore) -> Result<Swept, BlobError> {
    let index = blobs.store().media_index().await?;
    let (blob_names, partial_names) = blobs
        .blocking("listing the blob directories", |files| {
            Ok((files.blob_names()?, files.partial_names()?))
        })
        .await?;
    let rows: HashSet<String> = index.blobs.iter().map(|(id, ..)| id.to_string()).collect();
    let uploads: HashSet<String> = index
        .uploads
        .iter()
        .map(|(user, id, _)| format!("{user}-{id}"))
        .collect();
    let stray_blobs: Vec<String> = blob_names
        .iter()
        .filter(|name| !rows.contains(*name))
        .cloned()
        .collect();
    let stray_partials: Vec<String> = partial_names
        .iter()
        .filter(|name| !uploads.contains(*name))
        .cloned()
        .collect();
    let mut swept = Swept {
        stray_files: stray_blobs.len() + stray_partials.len(),
        ..Swept::default()
    };
    if swept.stray_files > 0 {
        tracing::info!(
            blobs = stray_blobs.len(),
            partials = stray_partials.len(),
            "deleting blob files that no row names (left by a crash)"
        );
    }
    blobs
        .blocking("deleting stray blob files", move |files| {
            for name in &stray_blobs {
                files.delete_blob_named(name)?;
            }
            for name in &stray_partials {
                files.delete_partial_named(name)?;
            }
            Ok(())
        })
        .await?;
    let on_disk: HashSet<String> = blob_names.into_iter().collect();
    let missing: Vec<BlobId> = index
        .blobs
        .iter()
        .filter(|(id, ..)| !on_disk.contains(&id.to_string()))
        .map(|(id, ..)| *id)
        .collect();
    if !missing.is_empty() {
        tracing::error!(
            count = missing.len(),
            "blob rows without their file; dropping them"
        );
        swept.blobs = blobs.drop_blobs(missing, None).await?;
    }
    let partials: HashSet<String> = partial_names.into_iter().collect();
    for (user, id, _) in &index.uploads {
        if !partials.contains(&format!("{user}-{id}")) {
            blobs.drop_upload(*user, *id).await?;
            swept.uploads += 1;
        }
    }
    count_stored(blobs).await?;
    Ok(swept)
}

/// Sets the gauges of what is stored from the rows.
async fn count_stored(blobs: &BlobStore) -> Result<(), BlobError> {
    let held = blobs.store().media_index().await?;
    let bytes = held.blobs.iter().map(|(_, blob, _)| blob.size).sum();
    blobs
        .metrics()
        .blobs
        .set_stored(held.blobs.len() as u64, bytes);
    Ok(())
}

/// One garbage collection pass at `now_ms`: blobs unreferenced past the retention time,
/// uploads older than their expiry (unless a stream serves them now).
pub(crate) async fn collect_garbage(blobs: &BlobStore, now_ms: u64) -> Result<Swept, BlobError> {
    let index = blobs.store().media_index().await?;
    let config = blobs.config();
    let retention = config.retention_ms();
    let expired: Vec<BlobId> = index
        .blobs
        .iter()
        .filter(|(_, blob, refs)| blob.collectable(*refs, now_ms, retention))
        .map(|(id, ..)| *id)
        .collect();
    let mut swept = Swept::default();
    if !expired.is_empty() {
        swept.blobs = blobs.drop_blobs(expired, Some(retention)).await?;
        blobs.metrics().blobs.collected(swept.blobs);
    }
    let expiry = config.partial_expiry_ms();
    for (user, id, upload) in &index.uploads {
        if now_ms >= upload.started_ms.saturating_add(expiry) && !blobs.is_uploading(*user, *id) {
            blobs.drop_upload(*user, *id).await?;
            swept.uploads += 1;
        }
    }
    if swept != Swept::default() {
        tracing::info!(
            blobs = swept.blobs,
            uploads = swept.uploads,
            "blob garbage collected"
        );
        count_stored(blobs).await?;
    }
    Ok(swept)
}

/// Collects garbage every `blobs.gc_interval_secs` until `stop`.
pub(crate) async fn run_gc(blobs: BlobStore, stop: CancellationToken) {
    let every = Duration::from_secs(blobs.config().gc_interval_secs.max(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = collect_garbage(&blobs, now_ms()).await {
            tracing::warn!(%error, "blob garbage collection failed; trying again next time");
        }
    }
}
