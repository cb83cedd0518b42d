//! Restore: checks a backup's manifest and every checksum, then recreates a data dir from
//! it in a new (or empty) directory.

use std::path::Path;

use super::{
    BLOB_DIR, BackupError, SECRET_FILES, files,
    manifest::{Manifest, ManifestKind},
};
use crate::store::schema;

/// Recreates a data dir at `data_dir` (new or empty) from the backup at `from`. Refuses a
/// backup without a manifest, with a file missing or differing from its checksum, or of a
/// newer schema, before writing anything. Blocking.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    let manifest = Manifest::read(from)?;
    for (file, known) in [
        (crate::store::schema::RELAY.file, schema::RELAY.current()),
        (crate::invites::INVITES_FILE, schema::INVITES.current()),
    ] {
        if let Some(&found) = manifest.schemas.get(file)
            && found > known
        {
            return Err(BackupError::NewerBackup {
                file: file.to_string(),
                found,
                known,
            });
        }
    }
    if !manifest
        .files
        .iter()
        .any(|entry| entry.path == crate::node_key::KEY_FILE)
    {
        return Err(BackupError::Missing(from.join(crate::node_key::KEY_FILE)));
    }
    manifest.verify(from)?;
    files::empty_target(data_dir)?;
    let mut dirs = std::collections::BTreeSet::new();
    for entry in &manifest.files {
        let Some(relative) = files::inside(&entry.path) else {
            continue;
        };
        let target = data_dir.join(&relative);
        if let Some(parent) = target.parent()
            && dirs.insert(parent.to_path_buf())
        {
            files::private_dir(parent)?;
        }
        let copied = files::copy_file(&from.join(&relative), &target)?;
        if copied.sha256 != entry.sha256 {
            return Err(BackupError::Corrupted {
                path: from.join(&relative),
                what: "changed while it was restored".into(),
            });
        }
        if SECRET_FILES.contains(&entry.path.as_str()) {
            files::owner_only(&target)?;
        }
    }
    // The blob directories the relay expects, even when the backup held no blob.
    files::private_dir(&data_dir.join(BLOB_DIR).join("partial"))?;
    for dir in dirs.iter().chain(std::iter::once(&data_dir.to_path_buf())) {
        files::sync_dir(dir)?;
    }
    if manifest.kind == ManifestKind::PreUpgrade {
        tracing::info!("restored the files copied aside before an upgrade");
    }
    Ok(manifest)
}
