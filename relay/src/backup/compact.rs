//! Compaction of a stopped relay's database files (redb gives freed pages back to the file
//! system only by compacting), and the estimate of what it would win, for `status`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};
use tidings_protocol::store::StoreError;

use super::{BackupError, DATABASE_FILES, online::open_stopped};

/// Most compaction passes over one file (redb reports whether a pass moved anything).
const MAX_COMPACT_PASSES: usize = 8;
/// Compaction is worth suggesting once this much of a file is unused, at least.
pub const COMPACT_WORTH_MIN_BYTES: u64 = 64 * 1024 * 1024;
/// ... and at least this share of the file (in percent).
pub const COMPACT_WORTH_MIN_PERCENT: u64 = 25;

/// One file before and after compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactedFile {
    /// Its name in the data dir.
    pub file: String,
    /// Bytes before.
    pub before: u64,
    /// Bytes after.
    pub after: u64,
}

/// Compacts every database file of the stopped relay of `data_dir`, `relay.redb` first (a
/// running relay holds its lock: [`BackupError::RelayRunning`], nothing touched). Blocking.
pub fn compact_data_dir(data_dir: &Path) -> Result<Vec<CompactedFile>, BackupError> {
    if !data_dir.join(crate::node_key::KEY_FILE).exists() {
        return Err(BackupError::NotADataDir(data_dir.to_path_buf()));
    }
    let mut done = Vec::new();
    for file in DATABASE_FILES {
        // Exclusive for every file, the invite database too: no `tidings-relay invite` may
        // write while its pages move.
        let path = data_dir.join(file);
        if !path.exists() {
            continue;
        }
        let before = file_size(&path)?;
        let mut db = match Database::open(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(BackupError::RelayRunning(data_dir.to_path_buf()));
            }
            Err(error) => return Err(BackupError::store(file)(error.into())),
        };
        for _ in 0..MAX_COMPACT_PASSES {
            let moved = db.compact().map_err(|error| {
                BackupError::store(file)(StoreError::io(
                    "compacting",
                    std::io::Error::other(error.to_string()),
                ))
            })?;
            if !moved {
                break;
            }
        }
        drop(db);
        done.push(CompactedFile {
            file: file.to_string(),
            before,
            after: file_size(&path)?,
        });
    }
    // A relay started meanwhile would have been refused above; check the mode the relay
    // uses for invites still opens (an `invite` command must keep working).
    drop(open_stopped(data_dir, crate::invites::INVITES_FILE)?);
    Ok(done)
}

fn file_size(path: &PathBuf) -> Result<u64, BackupError> {
    std::fs::metadata(path)
        .map(|meta| meta.len())
        .map_err(BackupError::io(path))
}

/// How much of a database file holds data, as seen from a read snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceEstimate {
    /// The file's size.
    pub file_bytes: u64,
    /// Bytes of the pages every table's tree uses (keys, values, their page overhead and the
    /// unused tail of those pages); redb's own bookkeeping pages are not counted.
    pub in_use_bytes: u64,
}

impl SpaceEstimate {
    /// What compaction would give back, about.
    pub fn reclaimable_bytes(&self) -> u64 {
        self.file_bytes.saturating_sub(self.in_use_bytes)
    }

    /// Whether `tidings-relay compact` is worth a stop: at least
    /// [`COMPACT_WORTH_MIN_BYTES`] and [`COMPACT_WORTH_MIN_PERCENT`] of the file unused.
    pub fn worth_compacting(&self) -> bool {
        let reclaimable = self.reclaimable_bytes();
        reclaimable >= COMPACT_WORTH_MIN_BYTES
            && reclaimable.saturating_mul(100)
                >= self.file_bytes.saturating_mul(COMPACT_WORTH_MIN_PERCENT)
    }
}

/// Estimates the unused space of the open database `db` at `path` from one read snapshot
/// (the running relay's writer is never waited for). Walks every table's pages: blocking,
/// and as costly as reading the live data once, so run it on the blocking pool and not often.
pub fn estimate_reclaimable(db: &Database, path: &Path) -> Result<SpaceEstimate, StoreError> {
    let file_bytes = std::fs::metadata(path)
        .map(|meta| meta.len())
        .map_err(|error| StoreError::io("reading the database file's size", error))?;
    let snapshot = db.begin_read()?;
    let mut in_use_bytes = 0u64;
    for handle in snapshot.list_tables()? {
        let table = snapshot.open_untyped_table(handle)?;
        let stats = table.stats()?;
        in_use_bytes = in_use_bytes
            .saturating_add(stats.stored_bytes())
            .saturating_add(stats.metadata_bytes())
            .saturating_add(stats.fragmented_bytes());
        tracing::trace!(table = table.name(), in_use_bytes, "table pages counted");
    }
    Ok(SpaceEstimate {
        file_bytes,
        in_use_bytes,
    })
}
