//! The client's local store: contacts, history, outbox and crypto state in one redb file.
//!
//! The file is opened in redb's multi-writer mode, so `tidings listen` and `tidings send` may
//! run side by side on one data dir. Crypto state is only ever loaded, used and saved inside a
//! single write transaction (which redb serializes across processes), so two processes never
//! overwrite each other's ratchets, and a message's decryption is committed together with the
//! message itself.

pub mod at_rest;
mod at_rest_migration;
#[cfg(test)]
mod at_rest_tests;
mod contacts;
mod crypto;
mod descriptors;
mod device_lists;
mod group_sessions;
pub mod groups;
mod held;
mod history;
mod history_sync;
pub mod outbox;
pub mod profiles;
mod receipts;
mod receive;
pub mod schema;
mod seal;
mod search;
pub mod status;
mod sync;
pub mod tables;
#[cfg(test)]
mod tests;
pub mod uploads;

use std::path::Path;

use redb::{ConcurrencyMode, Database, ReadableDatabase, StorageBackend};
use serde::{Serialize, de::DeserializeOwned};
use tidings_keys::StoreKey;
use tidings_protocol::codec;

pub use at_rest::{AtRest, ReadTxn, WriteTxn};
pub use device_lists::ListUpdate;
pub use groups::{KeyPlan, ReceiptCounts};
pub use held::{HELD_MAX_AGE, HELD_PER_USER, HELD_TOTAL};
pub use history_sync::HistorySync;
pub use receive::Received;
pub(crate) use seal::sign;
pub use search::{REBUILD_BATCH, SearchError, SearchQuery, SearchResults, Sender};
pub use tables::{Conversation, Direction, MessageRecord, MessageStatus, OutboxEntry, SealedCopy};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (redb's typed error, a corrupt record), as the relay's store does.
    #[error("local store: {0}")]
    Storage(#[from] tidings_protocol::store::StoreError),
    /// Crypto state could not be loaded or used.
    #[error("crypto state: {0}")]
    Crypto(#[from] tidings_keys::OlmError),
    /// A contact name or user is already taken.
    #[error("{0}")]
    Conflict(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A value sealed at rest does not open: the store was written under another device's
    /// key, or the value was changed or moved to another row.
    #[error("local store: a sealed value of table {table} does not open (wrong key or tampered)")]
    Sealed {
        /// The table holding it.
        table: &'static str,
    },
}

impl StoreError {
    /// A record of `table` that does not decode.
    pub(crate) fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> Self {
        StoreError::Storage(tidings_protocol::store::StoreError::corrupt(table, reason))
    }
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Storage(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// File name of the database inside the client's data dir.
pub const STORE_FILE: &str = "client.redb";

/// Creates `path` with mode 0600 if it does not exist, or sets that mode if it does.
#[cfg(unix)]
fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |error: std::io::Error| {
        StoreError::Storage(tidings_protocol::store::StoreError::io(
            path.display().to_string(),
            error,
        ))
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)
}

/// Handle to the client's database.
pub struct ClientStore {
    db: Database,
    at_rest: AtRest,
}

impl ClientStore {
    /// Opens (creating if needed) the database in `data_dir`, its personal values sealed
    /// under keys derived from `store_key` (the device identity's: see [`at_rest`]). It is
    /// created readable by its owner only, and an existing one is made so.
    /// (In the browser there is no file system path: use [`ClientStore::open_backend`].)
    pub fn open(data_dir: &Path, store_key: &StoreKey) -> Result<Self, StoreError> {
        #[cfg(unix)]
        owner_only(&data_dir.join(STORE_FILE))?;
        let path = data_dir.join(STORE_FILE);
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .create(&path)?;
        // After sealing, the free pages are at most the whole file.
        Self::prepare(db, store_key, || {
            std::fs::metadata(&path).map_or(0, |meta| meta.len())
        })
    }

    /// Opens (creating if needed) the database on an injected storage `backend` (the
    /// browser's OPFS file, an in-memory one in tests). One handle writes at a time
    /// (redb's exclusive-writer mode: such a backend has no byte-range locks).
    pub fn open_backend(
        backend: impl StorageBackend,
        store_key: &StoreKey,
    ) -> Result<Self, StoreError> {
        // Sealing rewrites every personal value once: the file at most doubles, plus the
        // nonces and tags; its free pages are then at most three times what it was.
        let before = backend.len().unwrap_or(0);
        let db = Database::builder().create_with_backend(backend)?;
        Self::prepare(db, store_key, || before.saturating_mul(3))
    }

    /// Creates the tables a new (or older) database lacks and migrates its schema.
    /// A store sealed by this opening gets its free pages scrubbed: `free_at_most` bounds
    /// their bytes.
    fn prepare(
        mut db: Database,
        store_key: &StoreKey,
        free_at_most: impl FnOnce() -> u64,
    ) -> Result<Self, StoreError> {
        let at_rest = AtRest::new(store_key);
        let txn = WriteTxn::new(db.begin_write()?, &at_rest);
        let found = schema::upgrade(&txn)?;
        {
            use tables::*;
            txn.open_table(META)?;
            txn.open_table(CONTACTS)?;
            txn.open_table(CONTACT_NAMES)?;
            txn.open_table(PEER_USERS)?;
            txn.open_table(DEVICE_LISTS)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(MESSAGE_IDS)?;
            txn.open_table(CONVERSATION_HEADS)?;
            txn.open_table(OUTBOX)?;
            txn.open_table(RECEIVED)?;
            txn.open_table(GROUPS)?;
            txn.open_table(GROUP_OUTBOUND)?;
            txn.open_table(GROUP_INBOUND)?;
            txn.open_table(GROUP_PENDING)?;
            txn.open_table(GROUP_RECEIPTS)?;
            txn.open_table(HELD)?;
            txn.open_table(UPLOADS)?;
        }
        search::create_tables(&txn)?;
        profiles::create_tables(&txn)?;
        txn.commit()?;
        if found != schema::current() {
            tracing::info!(from = found, to = schema::current(), "local store migrated");
        }
        if found < schema::SEALED_AT_REST {
            at_rest_migration::scrub_free_pages(&mut db, free_at_most())?;
        }
        Ok(Self { db, at_rest })
    }

    fn write<T>(
        &self,
        work: impl FnOnce(&WriteTxn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = WriteTxn::new(self.db.begin_write()?, &self.at_rest);
        let value = work(&txn)?;
        txn.commit()?;
        Ok(value)
    }

    fn read<T>(
        &self,
        work: impl FnOnce(&ReadTxn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = ReadTxn::new(self.db.begin_read()?, &self.at_rest);
        work(&txn)
    }
}

/// Decodes a record of `table` (the fuzz checks reach it too).
pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes, tables::MAX_RECORD).map_err(|error| StoreError::corrupt(table, error))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value)
}
