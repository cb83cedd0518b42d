//! Copies one redb file from one read transaction into a fresh file: what the copy holds is
//! exactly one committed state, while the writer goes on committing (redb keeps the
//! snapshot's pages until the read transaction ends; it never waits for it).

use std::path::Path;

use redb::{
    Database, MultimapTableHandle, ReadTransaction, ReadableDatabase, ReadableTableMetadata,
    TableHandle,
};
use tidings_protocol::store::StoreError;

use super::{BackupError, tables};

/// What a copy holds.
#[derive(Debug, Clone)]
pub(crate) struct Copied {
    /// The schema version the snapshot records (`None`: a first-release file).
    pub schema: Option<u32>,
    /// Entries copied, over every table.
    pub entries: u64,
}

/// Copies the current committed state of `db` (the file `file` of a data dir) into a new
/// file at `to`. `during` runs with the snapshot still open, before it is copied (the online
/// backup copies the blob files the snapshot names there).
pub(crate) fn copy_database<T>(
    db: &Database,
    file: &str,
    to: &Path,
    during: impl FnOnce(&ReadTransaction) -> Result<T, BackupError>,
) -> Result<(Copied, T), BackupError> {
    let snapshot = db.begin_read().map_err(|error| BackupError::Store {
        file: file.to_string(),
        source: error.into(),
    })?;
    let extra = during(&snapshot)?;
    let copied = copy_snapshot(&snapshot, file, to)?;
    Ok((copied, extra))
}

/// Copies what `snapshot` sees into a new file at `to`, then checks every table's length.
pub(crate) fn copy_snapshot(
    snapshot: &ReadTransaction,
    file: &str,
    to: &Path,
) -> Result<Copied, BackupError> {
    let store = |error: StoreError| BackupError::Store {
        file: file.to_string(),
        source: error,
    };
    let known = tables::known_tables(file);
    if let Some(table) = snapshot
        .list_multimap_tables()
        .map_err(|error| store(error.into()))?
        .next()
    {
        return Err(BackupError::UnknownTable {
            file: file.to_string(),
            table: table.name().to_string(),
        });
    }
    let mut plan = Vec::new();
    for handle in snapshot
        .list_tables()
        .map_err(|error| store(error.into()))?
    {
        let name = handle.name().to_string();
        let Some(copy) = tables::copier(&known, &name) else {
            return Err(BackupError::UnknownTable {
                file: file.to_string(),
                table: name,
            });
        };
        plan.push((name, copy));
    }
    if to.exists() {
        return Err(BackupError::NotEmpty(to.to_path_buf()));
    }
    let copy = Database::create(to).map_err(|error| store(error.into()))?;
    let txn = copy.begin_write().map_err(|error| store(error.into()))?;
    let mut entries = 0u64;
    for (name, copy_table) in &plan {
        entries += copy_table(snapshot, &txn, name).map_err(store)?;
    }
    txn.commit().map_err(|error| store(error.into()))?;
    check_lengths(snapshot, &copy, file, &plan)?;
    let schema = schema_of(snapshot).map_err(store)?;
    Ok(Copied { schema, entries })
}

/// Every table of the copy holds as many entries as in the snapshot.
fn check_lengths(
    snapshot: &ReadTransaction,
    copy: &Database,
    file: &str,
    plan: &[(String, tables::CopyTable)],
) -> Result<(), BackupError> {
    let store = |error: StoreError| BackupError::Store {
        file: file.to_string(),
        source: error,
    };
    let copied = copy.begin_read().map_err(|error| store(error.into()))?;
    for (name, _) in plan {
        let length = |txn: &ReadTransaction| -> Result<u64, StoreError> {
            let table = txn.open_untyped_table(redb::TableDefinition::<&[u8], &[u8]>::new(name))?;
            Ok(table.len()?)
        };
        let expected = length(snapshot).map_err(store)?;
        let got = length(&copied).map_err(store)?;
        if expected != got {
            return Err(BackupError::CopyMismatch {
                file: file.to_string(),
                table: name.clone(),
                expected,
                copied: got,
            });
        }
    }
    Ok(())
}

/// The schema version a snapshot records.
pub(crate) fn schema_of(snapshot: &ReadTransaction) -> Result<Option<u32>, StoreError> {
    match snapshot.open_table(crate::store::schema::META) {
        Ok(table) => Ok(
            redb::ReadableTable::get(&table, crate::store::schema::SCHEMA_VERSION)?
                .map(|value| value.value()),
        ),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}
