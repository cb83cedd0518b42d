//! `backup`: an online backup written by the running relay into a directory the operator
//! names (see `crate::backup`), answered with a summary of its manifest.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{AdminContext, protocol::AdminError};

/// What `tidings-relay backup` prints: the manifest without its file list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// Where it was written.
    pub to: String,
    /// Files written (the manifest not counted).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When it started, ms since the epoch: mail acknowledged before is in it.
    pub started_at_ms: u64,
    /// When it finished, ms since the epoch.
    pub finished_at_ms: u64,
    /// Schema version of each database file.
    pub schemas: BTreeMap<String, u32>,
    /// Media blobs collected while it ran, left out.
    pub blobs_gone: u64,
}

impl BackupSummary {
    /// The summary of `manifest`, written to `to`.
    pub fn of(to: &std::path::Path, manifest: &crate::backup::Manifest) -> Self {
        Self {
            to: to.display().to_string(),
            files: manifest.files.len() as u64,
            bytes: manifest.files.iter().map(|file| file.size).sum(),
            started_at_ms: manifest.started_at_ms,
            finished_at_ms: manifest.finished_at_ms,
            schemas: manifest.schemas.clone(),
            blobs_gone: manifest.blobs_gone,
        }
    }
}

/// Answers `backup`: `to` must be absolute (the relay's working directory is not the CLI's)
/// and new or empty. The copy runs on the blocking pool; the relay serves meanwhile.
pub(super) async fn handle(cx: &AdminContext, to: &str) -> Result<BackupSummary, AdminError> {
    let to = PathBuf::from(to);
    if !to.is_absolute() {
        return Err(AdminError::Backup(format!(
            "{} is not an absolute path",
            to.display()
        )));
    }
    let live = cx.backup.clone();
    let target = to.clone();
    let manifest =
        tokio::task::spawn_blocking(move || crate::backup::backup_online(&live, &target))
            .await
            .map_err(|_| AdminError::Unavailable)?
            .map_err(|error| {
                tracing::warn!(%error, "online backup failed");
                AdminError::Backup(error.to_string())
            })?;
    tracing::info!(to = %to.display(), files = manifest.files.len(), "online backup written");
    Ok(BackupSummary::of(&to, &manifest))
}
