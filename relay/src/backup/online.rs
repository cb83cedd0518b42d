//! A whole backup: each database from one read snapshot, the blob files `relay.redb`'s
//! snapshot names, config and keys, then the manifest. Online (the running relay hands over
//! its open databases) or offline (the relay is stopped and this opens the files).

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redb::{Database, ReadTransaction, ReadableTable};
use tidings_protocol::{BlobId, now_ms};

use super::{
    BLOB_DIR, BackupError, DATABASE_FILES, PLAIN_FILES, files,
    manifest::{Entries, FORMAT_VERSION, Manifest, ManifestKind},
    snapshot,
};
use crate::store::tables::MEDIA_BLOBS;

/// Reaches the relay's open `relay.redb` when asked (holding it between backups would keep
/// the store from reopening it after a disk failure).
pub(crate) type DatabaseGetter =
    Arc<dyn Fn() -> Result<Arc<Database>, tidings_protocol::store::StoreError> + Send + Sync>;

/// The open databases of a running relay (cheap to clone).
#[derive(Clone)]
pub struct LiveFiles {
    /// The data dir (for config, keys and blob files).
    data_dir: std::path::PathBuf,
    /// `relay.redb`.
    relay: DatabaseGetter,
    /// `status.redb`.
    status: Arc<Database>,
    /// `invites.redb`.
    invites: Arc<Database>,
    /// The last estimate of `relay.redb`'s unused space, and when it was made.
    estimate: Arc<Mutex<Option<(Instant, super::SpaceEstimate)>>>,
}

/// How long an estimate of the unused space is reused (it reads every page of the tables).
const ESTIMATE_MAX_AGE: Duration = Duration::from_secs(300);

impl LiveFiles {
    /// The data dir these files are in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The unused space of `relay.redb`, estimated from a read snapshot at most
    /// [`ESTIMATE_MAX_AGE`] old (blocking; see [`super::estimate_reclaimable`]).
    pub fn estimate_relay_space(
        &self,
    ) -> Result<super::SpaceEstimate, tidings_protocol::store::StoreError> {
        let mut last = self
            .estimate
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((at, estimate)) = *last
            && at.elapsed() < ESTIMATE_MAX_AGE
        {
            return Ok(estimate);
        }
        let db = (self.relay)()?;
        let estimate = super::estimate_reclaimable(&db, &self.data_dir.join(DATABASE_FILES[0]))?;
        *last = Some((Instant::now(), estimate));
        Ok(estimate)
    }

    /// The databases of the relay serving `data_dir`.
    pub(crate) fn new(
        data_dir: std::path::PathBuf,
        relay: DatabaseGetter,
        status: Arc<Database>,
        invites: Arc<Database>,
    ) -> Self {
        Self {
            data_dir,
            relay,
            status,
            invites,
            estimate: Arc::default(),
        }
    }
}

impl std::fmt::Debug for LiveFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFiles")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Backs up a running relay into `to` (new or empty) while it serves. Blocking (minutes for
/// a large relay): run it off the async runtime.
pub fn backup_online(live: &LiveFiles, to: &Path) -> Result<Manifest, BackupError> {
    let relay = (live.relay)().map_err(BackupError::store(DATABASE_FILES[0]))?;
    let databases = [
        (DATABASE_FILES[0], relay.as_ref()),
        (DATABASE_FILES[1], live.status.as_ref()),
        (DATABASE_FILES[2], live.invites.as_ref()),
    ];
    write_backup(&live.data_dir, &databases, to, ManifestKind::Online)
}

/// Backs up the stopped relay of `data_dir` into `to`, opening its files itself; refuses
/// with [`BackupError::RelayRunning`] if a relay holds them.
pub fn backup_offline(data_dir: &Path, to: &Path) -> Result<Manifest, BackupError> {
    if !data_dir.join(crate::node_key::KEY_FILE).exists() {
        return Err(BackupError::NotADataDir(data_dir.to_path_buf()));
    }
    let mut opened = Vec::new();
    for file in DATABASE_FILES {
        if let Some(db) = open_stopped(data_dir, file)? {
            opened.push((file, db));
        }
    }
    let databases: Vec<(&str, &Database)> = opened.iter().map(|(file, db)| (*file, db)).collect();
    write_backup(data_dir, &databases, to, ManifestKind::Offline)
}

/// Opens `file` of a stopped relay's data dir (`None` if it does not exist), in the mode the
/// relay opens it; a lock held by a running relay is [`BackupError::RelayRunning`].
pub(crate) fn open_stopped(data_dir: &Path, file: &str) -> Result<Option<Database>, BackupError> {
    let path = data_dir.join(file);
    if !path.exists() {
        return Ok(None);
    }
    let mut builder = Database::builder();
    if file == crate::invites::INVITES_FILE {
        builder.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
    }
    match builder.open(&path) {
        Ok(db) => Ok(Some(db)),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            Err(BackupError::RelayRunning(data_dir.to_path_buf()))
        }
        Err(error) => Err(BackupError::Store {
            file: file.to_string(),
            source: error.into(),
        }),
    }
}

/// Writes the backup of `databases` (file name, open database) and the data dir's plain
/// files and blobs into `to`, the manifest last.
pub(crate) fn write_backup(
    data_dir: &Path,
    databases: &[(&str, &Database)],
    to: &Path,
    kind: ManifestKind,
) -> Result<Manifest, BackupError> {
    files::empty_target(to)?;
    let started_at_ms = now_ms();
    let mut entries = Entries::default();
    let mut schemas = std::collections::BTreeMap::new();
    let mut blobs_gone = 0;
    for (file, db) in databases {
        let target = to.join(file);
        let copy_blobs = *file == crate::store::schema::RELAY.file;
        let (copied, named) = snapshot::copy_database(db, file, &target, |snapshot| {
            if copy_blobs {
                named_blobs(snapshot)
            } else {
                Ok(Vec::new())
            }
        })?;
        if let Some(version) = copied.schema {
            schemas.insert(file.to_string(), version);
        }
        files::owner_only(&target)?;
        entries.add(file.to_string(), files::digest(&target)?);
        tracing::info!(file, entries = copied.entries, "database copied");
        // Blob files never change, only go whole: copied after the snapshot ended, so it
        // does not hold the writer's freed pages for the time the media takes.
        blobs_gone += copy_blobs_named(&named, data_dir, to, &mut entries)?;
    }
    copy_plain_files(data_dir, to, &mut entries)?;
    files::sync_dir(to)?;
    let manifest = Manifest {
        format: FORMAT_VERSION,
        kind,
        relay_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at_ms,
        started_at: files::utc_stamp(started_at_ms),
        finished_at_ms: now_ms(),
        schemas,
        blobs_gone,
        files: entries.0,
    };
    manifest.write(to)?;
    Ok(manifest)
}

/// Copies config and keys that exist into `to`.
pub(crate) fn copy_plain_files(
    data_dir: &Path,
    to: &Path,
    entries: &mut Entries,
) -> Result<(), BackupError> {
    for file in PLAIN_FILES {
        let from = data_dir.join(file);
        if from.exists() {
            entries.add(file.to_string(), files::copy_file(&from, &to.join(file))?);
        }
    }
    Ok(())
}

/// The ids of the whole blobs `snapshot` (of `relay.redb`) names.
fn named_blobs(snapshot: &ReadTransaction) -> Result<Vec<BlobId>, BackupError> {
    let store = |error: tidings_protocol::store::StoreError| BackupError::Store {
        file: crate::store::schema::RELAY.file.to_string(),
        source: error,
    };
    let table = match snapshot.open_table(MEDIA_BLOBS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(error) => return Err(store(error.into())),
    };
    let mut ids = Vec::new();
    for entry in table.iter().map_err(|error| store(error.into()))? {
        let (id, _) = entry.map_err(|error| store(error.into()))?;
        ids.push(BlobId::from_bytes(*id.value()));
    }
    Ok(ids)
}

/// Copies the blob files `ids` into `to`; returns how many were gone (collected after the
/// snapshot: blob files are immutable, only ever deleted whole).
fn copy_blobs_named(
    ids: &[BlobId],
    data_dir: &Path,
    to: &Path,
    entries: &mut Entries,
) -> Result<u64, BackupError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let blob_dir = to.join(BLOB_DIR);
    files::private_dir(&blob_dir)?;
    let mut gone = 0;
    for id in ids {
        let name = id.to_string();
        let held = data_dir.join(BLOB_DIR).join(&name);
        match files::copy_file(&held, &blob_dir.join(&name)) {
            Ok(digested) => entries.add(format!("{BLOB_DIR}/{name}"), digested),
            Err(BackupError::Io { source, path })
                if source.kind() == std::io::ErrorKind::NotFound && path == held =>
            {
                tracing::info!(blob = %name, "blob collected during the backup; left out");
                gone += 1;
            }
            Err(error) => return Err(error),
        }
    }
    files::sync_dir(&blob_dir)?;
    Ok(gone)
}
