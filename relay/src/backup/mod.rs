//! Backups of a relay's data dir: an online copy while it serves, restore, compaction, and
//! the copy of the old files before a schema migration.
//!
//! One job per file: `snapshot.rs` copies one redb file from one read transaction,
//! `tables.rs` names every table a relay file may hold, `manifest.rs` writes and checks the
//! manifest (written last, so a half-written backup is told apart), `online.rs` takes a whole
//! backup, `restore.rs` turns one back into a data dir, `compact.rs` compacts a stopped relay's
//! files and estimates what that would win, `upgrade.rs` copies the files aside before a
//! migration, `files.rs` does the plain file work (copy, hash, fsync, names).

mod compact;
mod files;
mod manifest;
mod online;
mod restore;
mod snapshot;
mod tables;
mod upgrade;

use std::path::{Path, PathBuf};

pub use compact::{CompactedFile, SpaceEstimate, compact_data_dir, estimate_reclaimable};
pub use manifest::{BackupSummary, FileEntry, MANIFEST_FILE, Manifest, ManifestKind};
pub use online::{LiveFiles, backup_offline, backup_online};
pub use restore::restore;
pub use upgrade::PRE_UPGRADE_PREFIX;
pub(crate) use upgrade::copy_before_migration;

use tidings_protocol::store::StoreError;

/// Why a backup, restore, compaction or pre-upgrade copy failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path it was about.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A database could not be read or written.
    #[error("{file}: {source}")]
    Store {
        /// The database file.
        file: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The target of a backup or restore already holds something.
    #[error("{0} is not empty; give a new or empty directory")]
    NotEmpty(PathBuf),
    /// A database holds a table this build does not know how to copy, so a copy would lose it.
    #[error(
        "{file} holds table {table:?}, which this build does not know; refusing a partial copy"
    )]
    UnknownTable {
        /// The database file.
        file: String,
        /// The table.
        table: String,
    },
    /// The copy of a table does not hold what the snapshot held.
    #[error("{file}: the copy of table {table:?} holds {copied} entries, the snapshot {expected}")]
    CopyMismatch {
        /// The database file.
        file: String,
        /// The table.
        table: String,
        /// Entries in the snapshot.
        expected: u64,
        /// Entries in the copy.
        copied: u64,
    },
    /// The backup has no manifest: it was never finished (or is not a backup).
    #[error(
        "{0} has no {MANIFEST_FILE}: the backup is incomplete (interrupted before it finished) \
         or this is not a backup"
    )]
    NoManifest(PathBuf),
    /// The manifest does not parse or breaks a bound.
    #[error("{path}: bad manifest: {reason}")]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file the manifest names is missing from the backup.
    #[error("the backup is incomplete: {0} is missing")]
    Missing(PathBuf),
    /// A file of the backup differs from what the manifest recorded.
    #[error("the backup is corrupted: {path} {what}")]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// How it differs (size or checksum).
        what: String,
    },
    /// The backup was written by a newer Tidings than this one.
    #[error(
        "{file} in the backup has schema {found}, this build knows up to {known}; \
         restore it with a newer tidings-relay"
    )]
    NewerBackup {
        /// The database file.
        file: String,
        /// Its schema in the backup.
        found: u32,
        /// The newest this build knows.
        known: u32,
    },
    /// A relay is running on the data dir (its database file is locked).
    #[error(
        "a relay is running on {0} (its database is locked); stop it first \
         (for a backup of a running relay use `tidings-relay backup`, which asks it)"
    )]
    RelayRunning(PathBuf),
    /// The directory is not a relay data dir.
    #[error("{0} is not a relay data dir (no relay.key)")]
    NotADataDir(PathBuf),
}

impl BackupError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
        move |source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn store(file: &str) -> impl FnOnce(StoreError) -> BackupError + '_ {
        move |source| BackupError::Store {
            file: file.to_string(),
            source,
        }
    }
}

/// The redb files of a data dir, by name (each is copied from its own read snapshot).
pub const DATABASE_FILES: [&str; 3] = [
    crate::store::schema::RELAY.file,
    crate::store::status::STATUS_FILE,
    crate::invites::INVITES_FILE,
];

/// The small files of a data dir copied as they are: config and keys (missing ones skipped).
pub const PLAIN_FILES: [&str; 3] = [
    crate::config::CONFIG_FILE,
    crate::node_key::KEY_FILE,
    crate::push::VAPID_KEY_FILE,
];

/// Files that hold secrets: written owner-only in a backup and in a restored data dir.
pub(crate) const SECRET_FILES: [&str; 2] = [crate::node_key::KEY_FILE, crate::push::VAPID_KEY_FILE];

/// The directory of whole media blobs inside a data dir (as `crate::blobs` lays it out).
pub(crate) const BLOB_DIR: &str = "blobs";
