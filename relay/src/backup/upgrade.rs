//! Before a schema migration runs at start, the old files are copied aside into
//! `<data-dir>/pre-upgrade-<from>-<to>-<time>/` with a manifest, so an operator can go back.

use std::path::{Path, PathBuf};

use redb::ReadableDatabase;
use tidings_protocol::{now_ms, store::schema_plan};

use super::{
    BackupError, DATABASE_FILES, files,
    manifest::{Entries, FORMAT_VERSION, Manifest, ManifestKind},
    online::{copy_plain_files, open_stopped},
    snapshot,
};
use crate::store::schema::{self, Schema};

/// Prefix of the directories holding files copied aside before a migration.
pub const PRE_UPGRADE_PREFIX: &str = "pre-upgrade-";

/// A file whose schema is older than this build's.
#[derive(Debug, Clone, Copy)]
struct Due {
    found: u32,
    current: u32,
}

/// If opening the data dir will migrate a database, copies the database files, config and
/// keys into a new `pre-upgrade-<from>-<to>-<UTC time>/` inside it (unless `enabled` is
/// false) and returns that directory. Runs before the relay opens anything; a file of a newer
/// schema is left for the store's own refusal. Blocking.
pub(crate) fn copy_before_migration(
    data_dir: &Path,
    enabled: bool,
) -> Result<Option<PathBuf>, BackupError> {
    let mut due = None;
    let mut schemas = std::collections::BTreeMap::new();
    for (file, schema) in [
        (crate::store::schema::RELAY.file, &schema::RELAY),
        (crate::invites::INVITES_FILE, &schema::INVITES),
    ] {
        let Some(found) = found_version(data_dir, file, schema)? else {
            continue;
        };
        schemas.insert(file.to_string(), found.found);
        if found.found < found.current && due.is_none() {
            due = Some(found);
        }
    }
    let Some(due) = due else {
        return Ok(None);
    };
    if !enabled {
        tracing::warn!(
            from = due.found,
            to = due.current,
            "migrating without a copy of the old files (--no-backup-before-upgrade)"
        );
        return Ok(None);
    }
    let started_at_ms = now_ms();
    let started_at = files::utc_stamp(started_at_ms);
    let dir = data_dir.join(format!(
        "{PRE_UPGRADE_PREFIX}{}-{}-{started_at}",
        due.found, due.current
    ));
    files::empty_target(&dir)?;
    let mut entries = Entries::default();
    for file in DATABASE_FILES {
        let from = data_dir.join(file);
        if from.exists() {
            entries.add(file.to_string(), files::copy_file(&from, &dir.join(file))?);
        }
    }
    copy_plain_files(data_dir, &dir, &mut entries)?;
    files::sync_dir(&dir)?;
    Manifest {
        format: FORMAT_VERSION,
        kind: ManifestKind::PreUpgrade,
        relay_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at_ms,
        started_at,
        finished_at_ms: now_ms(),
        schemas,
        blobs_gone: 0,
        files: entries.0,
    }
    .write(&dir)?;
    files::sync_dir(data_dir)?;
    tracing::info!(
        from = due.found,
        to = due.current,
        copy = %dir.display(),
        "copied the old database files aside before migrating them"
    );
    Ok(Some(dir))
}

/// The version `file` records and the one this build writes (`None`: no file yet, a fresh
/// one, a newer one or one another process holds, which the store refuses itself). Read without
/// writing when the file allows (so the copy is the old file byte for byte); a file that
/// needs a repair first (a crash) is opened as the relay would, which repairs it.
fn found_version(
    data_dir: &Path,
    file: &'static str,
    schema: &Schema,
) -> Result<Option<Due>, BackupError> {
    let path = data_dir.join(file);
    if !path.exists() {
        return Ok(None);
    }
    let mut builder = redb::Database::builder();
    if file == crate::invites::INVITES_FILE {
        builder.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
    }
    match builder.open_read_only(&path) {
        Ok(db) => plan(&db, file, schema),
        // Another relay holds it: the store's own open says so.
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Ok(None),
        Err(error) => {
            tracing::info!(file, %error, "opening the file to repair it before reading its schema");
            match open_stopped(data_dir, file)? {
                Some(db) => plan(&db, file, schema),
                None => Ok(None),
            }
        }
    }
}

fn plan(
    db: &impl ReadableDatabase,
    file: &'static str,
    schema: &Schema,
) -> Result<Option<Due>, BackupError> {
    let snapshot = db
        .begin_read()
        .map_err(|error| BackupError::store(file)(error.into()))?;
    let fresh = snapshot
        .list_tables()
        .map_err(|error| BackupError::store(file)(error.into()))?
        .next()
        .is_none();
    let recorded = snapshot::schema_of(&snapshot).map_err(BackupError::store(file))?;
    Ok(
        schema_plan(schema.file, recorded, fresh, schema.migrations.len())
            .ok()
            .filter(|_| !fresh)
            .map(|plan| Due {
                found: plan.found,
                current: plan.current,
            }),
    )
}
