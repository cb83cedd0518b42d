//! The error both redb stores (the relay's and the client's) answer with (feature `store`).
//!
//! redb reports each kind of operation with its own error type (opening a database, beginning
//! a transaction, opening a table, reading or writing, committing); [`StoreError`] keeps them
//! as they are, so a caller can still tell a full disk from a corrupt file, and adds what the
//! stores themselves detect: a record that does not decode, a store that is shut down.

use std::{io, sync::Arc};

/// Why a store operation failed. Nothing of a failed write was stored.
///
/// The redb errors sit behind an [`Arc`]: the relay's writer commits many callers' operations
/// in one transaction, and when that commit fails every one of them gets the same error. redb's
/// errors are not `Clone` (they hold `io::Error`s); sharing one keeps the whole error, source
/// chain included, for each waiter instead of a string summary of it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened, created or repaired.
    #[error("opening the database: {0}")]
    Database(#[source] Arc<redb::DatabaseError>),
    /// A transaction could not begin.
    #[error("beginning a transaction: {0}")]
    Transaction(#[source] Arc<redb::TransactionError>),
    /// A table could not be opened, created or deleted.
    #[error("opening a table: {0}")]
    Table(#[source] Arc<redb::TableError>),
    /// Reading or writing the database failed (I/O, a full disk, corruption redb detected).
    #[error("storage failure: {0}")]
    Storage(#[source] Arc<redb::StorageError>),
    /// A transaction could not be committed; nothing of it is durable.
    #[error("commit failed: {0}")]
    Commit(#[source] Arc<redb::CommitError>),
    /// An I/O operation around the database (its file, its backend, a thread) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A stored record did not decode.
    #[error("corrupt record in {table}: {reason}")]
    Corrupt {
        /// The table holding it.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The database is closed after a failed commit and could not be reopened yet.
    #[error("the database is unavailable: {reason}")]
    Unavailable {
        /// Why it could not be reopened.
        reason: &'static str,
    },
    /// The store was shut down.
    #[error("the store is shut down")]
    Closed,
    /// The file records a schema version newer than this build knows: it was not opened.
    #[error(
        "{file}: this data dir was written by a newer Tidings (schema {found}); \
         this build knows up to {known}"
    )]
    NewerSchema {
        /// The database file (its name in the data dir).
        file: &'static str,
        /// The version the file records.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
}

impl StoreError {
    /// A record of `table` that does not decode.
    pub fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            table,
            reason: reason.to_string(),
        }
    }

    /// An I/O error, with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// The I/O error underneath, if the storage layer failed on I/O.
    pub fn io_error(&self) -> Option<&io::Error> {
        let storage = match self {
            StoreError::Io { source, .. } => return Some(source),
            StoreError::Storage(error) => Some(&**error),
            StoreError::Database(error) => match &**error {
                redb::DatabaseError::Storage(storage) => Some(storage),
                _ => None,
            },
            StoreError::Transaction(error) => match &**error {
                redb::TransactionError::Storage(storage) => Some(storage),
                _ => None,
            },
            StoreError::Table(error) => match &**error {
                redb::TableError::Storage(storage) => Some(storage),
                _ => None,
            },
            StoreError::Commit(error) => match &**error {
                redb::CommitError::Storage(storage) => Some(storage),
                _ => None,
            },
            StoreError::Corrupt { .. }
            | StoreError::Unavailable { .. }
            | StoreError::Closed
            | StoreError::NewerSchema { .. } => None,
        };
        match storage {
            Some(redb::StorageError::Io(error)) => Some(error),
            _ => None,
        }
    }

    /// Whether the disk is full (`ENOSPC`/`EDQUOT`): the operation may work once space is freed.
    pub fn is_disk_full(&self) -> bool {
        self.io_error().is_some_and(|error| {
            matches!(
                error.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            )
        })
    }
}

macro_rules! from_redb {
    ($($variant:ident($error:ty)),* $(,)?) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::$variant(Arc::new(error))
            }
        }
    )*};
}
from_redb!(
    Database(redb::DatabaseError),
    Transaction(redb::TransactionError),
    Table(redb::TableError),
    Storage(redb::StorageError),
    Commit(redb::CommitError),
);

/// The schema version of a redb file that records none: what the first release wrote.
pub const UNVERSIONED_SCHEMA: u32 = 1;

/// What opening a redb file must do about its schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaPlan {
    /// The version the file was found at.
    pub found: u32,
    /// The version this build writes (one past the last migration).
    pub current: u32,
    /// The index of the first migration to run (entry `i` takes version
    /// `UNVERSIONED_SCHEMA + i` to the next); `migrations` when none is due.
    pub first_migration: usize,
}

/// Decides, for a file with `recorded` version (`None`: no record; `fresh`: no table at all
/// yet, so it is stamped with the current version), which of `migrations` migrations must run,
/// or refuses a file a newer build wrote with [`StoreError::NewerSchema`].
pub fn schema_plan(
    file: &'static str,
    recorded: Option<u32>,
    fresh: bool,
    migrations: usize,
) -> Result<SchemaPlan, StoreError> {
    let count = u32::try_from(migrations).unwrap_or(u32::MAX - UNVERSIONED_SCHEMA);
    let current = UNVERSIONED_SCHEMA.saturating_add(count);
    let found = match recorded {
        Some(version) => version,
        None if fresh => current,
        None => UNVERSIONED_SCHEMA,
    };
    if found > current {
        return Err(StoreError::NewerSchema {
            file,
            found,
            known: current,
        });
    }
    let first = found.checked_sub(UNVERSIONED_SCHEMA).ok_or_else(|| {
        StoreError::corrupt("meta", format!("schema version {found} does not exist"))
    })?;
    Ok(SchemaPlan {
        found,
        current,
        first_migration: usize::try_from(first).unwrap_or(usize::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_io_failures() {
        let full = redb::StorageError::Io(io::Error::from(io::ErrorKind::StorageFull));
        let commit = StoreError::from(redb::CommitError::Storage(full));
        assert!(commit.is_disk_full());
        let other = StoreError::from(redb::StorageError::Io(io::Error::other("bad sector")));
        assert!(!other.is_disk_full());
        assert!(other.io_error().is_some());
        assert!(!StoreError::corrupt("users", "truncated").is_disk_full());
    }

    #[test]
    fn one_failure_answers_many_waiters_with_its_source_kept() {
        let error = StoreError::from(redb::CommitError::Storage(redb::StorageError::Io(
            io::Error::other("injected"),
        )));
        let copies: Vec<StoreError> = (0..3).map(|_| error.clone()).collect();
        for copy in &copies {
            assert!(std::error::Error::source(copy).is_some());
            assert!(copy.to_string().contains("injected"), "{copy}");
        }
    }
}
