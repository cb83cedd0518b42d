//! `status`: the running relay's state in numbers, gathered from its handles.

use std::path::Path;

use super::{AdminContext, protocol::AdminError, replies::StatusReport};

/// Most database files the report lists (the data dir holds two today).
const MAX_DATABASE_FILES: usize = 16;

/// Answers `status`.
pub(super) async fn handle(cx: &AdminContext) -> Result<StatusReport, AdminError> {
    let totals = cx.store.totals().await.map_err(super::storage)?;
    let media = cx.store.media_index().await.map_err(super::storage)?;
    let dht_routing_peers = cx.network.routing_peers().await as u64;
    let data_dir = cx.data_dir.clone();
    let files = tokio::task::spawn_blocking(move || database_files(&data_dir))
        .await
        .map_err(|_| AdminError::Unavailable)?;
    let last_commit_ms = files.last_commit_ms;
    let live = cx.backup.clone();
    let space = tokio::task::spawn_blocking(move || live.estimate_relay_space())
        .await
        .map_err(|_| AdminError::Unavailable)?
        .map_err(|error| tracing::warn!(%error, "cannot estimate the unused space"))
        .ok();
    Ok(StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        name: cx.name.clone(),
        peer_id: cx.network.peer_id().to_string(),
        listen_addrs: cx
            .network
            .listen_addrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
        announce_addrs: cx.announce.clone(),
        started_at_ms: cx.started_at_ms,
        uptime_secs: cx.started.elapsed().as_secs(),
        users: totals.users,
        suspended_users: totals.suspended_users,
        devices: totals.devices,
        devices_online: cx.live.devices() as u64,
        mailbox_entries: totals.mailbox_entries,
        mailbox_bytes: totals.mailbox_bytes,
        outbox_entries: totals.outbox_entries,
        outbox_bytes: totals.outbox_bytes,
        media_blobs: media.blobs.len() as u64,
        media_bytes: media.blobs.iter().map(|(_, blob, _)| blob.size).sum(),
        database_files: files.sizes,
        dht_routing_peers,
        last_commit_ms,
        reclaimable_bytes: space.map(|space| space.reclaimable_bytes()),
        compact_would_help: space.map(|space| space.worth_compacting()),
    })
}

struct DatabaseFiles {
    sizes: Vec<(String, u64)>,
    last_commit_ms: Option<u64>,
}

/// The `*.redb` files of the data dir and when the mailbox database was last written.
fn database_files(data_dir: &Path) -> DatabaseFiles {
    let mut sizes = Vec::new();
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".redb") || sizes.len() >= MAX_DATABASE_FILES {
                continue;
            }
            if let Ok(metadata) = entry.metadata() {
                sizes.push((name, metadata.len()));
            }
        }
    }
    sizes.sort();
    let last_commit_ms = std::fs::metadata(data_dir.join(crate::STORE_FILE))
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| since.as_millis() as u64);
    DatabaseFiles {
        sizes,
        last_commit_ms,
    }
}
