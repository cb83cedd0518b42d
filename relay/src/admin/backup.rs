//! `backup`: an online backup written by the running relay into a directory the operator
//! names (see `crate::backup`), answered with a summary of its manifest.

use std::path::PathBuf;

use super::{AdminContext, protocol::AdminError};
use crate::backup::BackupSummary;

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
