//! The manifest of a backup: what it holds, each file's size and SHA-256, written last (to a
//! temporary name, fsynced, renamed), so a backup without one is known to be unfinished.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use super::{BackupError, files};

/// The manifest's name inside a backup.
pub const MANIFEST_FILE: &str = "manifest.toml";
/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest manifest read back (about 250 bytes a file: a million blobs fit).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
/// Most files one manifest may list.
const MAX_MANIFEST_FILES: usize = 1_000_000;

/// Why a backup was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    /// `tidings-relay backup`, of a running relay (one snapshot per database file).
    Online,
    /// `tidings-relay backup` of a stopped relay (the CLI opened the files itself).
    Offline,
    /// The old files copied aside before a schema migration (databases, config and keys).
    PreUpgrade,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its path inside the backup and inside the data dir (`/`-separated, relative).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format: u32,
    /// Why it was written.
    pub kind: ManifestKind,
    /// The `tidings-relay` version that wrote it.
    pub relay_version: String,
    /// When it was started (the snapshot of `relay.redb` is from then), ms since the epoch.
    pub started_at_ms: u64,
    /// The same, readable (UTC).
    pub started_at: String,
    /// When the last file was written, ms since the epoch.
    pub finished_at_ms: u64,
    /// Schema version of each database file (absent: a first-release file).
    pub schemas: BTreeMap<String, u32>,
    /// Blob files the snapshot named that were gone when copied (collected meanwhile); the
    /// restored relay drops their rows at start.
    #[serde(default)]
    pub blobs_gone: u64,
    /// Every file, with its checksum.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Writes the manifest into `dir` last: temporary name, fsync, rename, fsync of `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let text = toml::to_string(self).map_err(|error| BackupError::BadManifest {
            path: dir.join(MANIFEST_FILE),
            reason: error.to_string(),
        })?;
        let temporary = dir.join(format!("{MANIFEST_FILE}.partial"));
        std::fs::write(&temporary, text).map_err(BackupError::io(&temporary))?;
        files::owner_only(&temporary)?;
        std::fs::File::open(&temporary)
            .and_then(|file| file.sync_all())
            .map_err(BackupError::io(&temporary))?;
        let path = dir.join(MANIFEST_FILE);
        std::fs::rename(&temporary, &path).map_err(BackupError::io(&path))?;
        files::sync_dir(dir)
    }

    /// Reads the manifest of the backup `dir`, checking its bounds and names.
    pub fn read(dir: &Path) -> Result<Manifest, BackupError> {
        let path = dir.join(MANIFEST_FILE);
        let bad = |reason: String| BackupError::BadManifest {
            path: path.clone(),
            reason,
        };
        let size = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::NoManifest(dir.to_path_buf()));
            }
            Err(error) => return Err(BackupError::io(&path)(error)),
        };
        if size > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "{size} bytes, more than the limit of {MAX_MANIFEST_BYTES}"
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(BackupError::io(&path))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|error| bad(error.to_string()))?;
        if manifest.format > FORMAT_VERSION {
            return Err(bad(format!(
                "format {} is newer than this build's {FORMAT_VERSION}; restore it with a newer \
                 tidings-relay",
                manifest.format
            )));
        }
        if manifest.files.len() > MAX_MANIFEST_FILES {
            return Err(bad(format!(
                "{} files, more than the limit of {MAX_MANIFEST_FILES}",
                manifest.files.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for entry in &manifest.files {
            if files::inside(&entry.path).is_none() || entry.path == MANIFEST_FILE {
                return Err(bad(format!(
                    "{:?} is not a file name inside a backup",
                    entry.path
                )));
            }
            if !seen.insert(entry.path.as_str()) {
                return Err(bad(format!("{:?} is listed twice", entry.path)));
            }
        }
        Ok(manifest)
    }

    /// Checks every file the manifest lists against its size and checksum; the first that
    /// is missing or differs is the error.
    pub fn verify(&self, dir: &Path) -> Result<(), BackupError> {
        for entry in &self.files {
            let path = dir.join(&entry.path);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if !meta.file_type().is_file() => {
                    return Err(BackupError::Corrupted {
                        path,
                        what: "is not a regular file".into(),
                    });
                }
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    return Err(BackupError::Missing(path));
                }
                Err(error) => return Err(BackupError::io(&path)(error)),
            }
            let found = match files::digest(&path) {
                Ok(found) => found,
                Err(BackupError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Err(BackupError::Missing(path));
                }
                Err(error) => return Err(error),
            };
            if found.size != entry.size {
                return Err(BackupError::Corrupted {
                    path,
                    what: format!("is {} bytes, the manifest says {}", found.size, entry.size),
                });
            }
            if found.sha256 != entry.sha256 {
                return Err(BackupError::Corrupted {
                    path,
                    what: "does not match its SHA-256 in the manifest".into(),
                });
            }
        }
        Ok(())
    }
}

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
    /// The same, readable (UTC).
    pub started_at: String,
    /// When it finished, ms since the epoch.
    pub finished_at_ms: u64,
    /// Schema version of each database file.
    pub schemas: BTreeMap<String, u32>,
    /// Media blobs collected while it ran, left out.
    pub blobs_gone: u64,
}

impl BackupSummary {
    /// The summary of `manifest`, written to `to`.
    pub fn of(to: &Path, manifest: &Manifest) -> Self {
        Self {
            to: to.display().to_string(),
            files: manifest.files.len() as u64,
            bytes: manifest.files.iter().map(|file| file.size).sum(),
            started_at_ms: manifest.started_at_ms,
            started_at: manifest.started_at.clone(),
            finished_at_ms: manifest.finished_at_ms,
            schemas: manifest.schemas.clone(),
            blobs_gone: manifest.blobs_gone,
        }
    }
}

/// Collects a backup's file entries as they are written.
#[derive(Debug, Default)]
pub(crate) struct Entries(pub Vec<FileEntry>);

impl Entries {
    /// Records `path` (relative, `/`-separated) with its digest.
    pub fn add(&mut self, path: String, digested: files::Digested) {
        self.0.push(FileEntry {
            path,
            size: digested.size,
            sha256: digested.sha256,
        });
    }
}
