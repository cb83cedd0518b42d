//! Durable storage: a small typed API over redb, written by one batching writer thread.
//!
//! Every mutation goes through [`Store`]'s async methods, which queue an operation for the
//! writer thread. The writer applies everything that queued up meanwhile in one write
//! transaction and commits it with one fsync (a group commit), then answers each caller. A
//! caller's answer therefore always means "durable" (or a storage error: nothing stored).

mod apply;
pub mod fault;
mod reads;
pub mod tables;
mod writer;

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use redb::{Database, StorageBackend};
use tidings_protocol::{
    DeviceCert, DeviceId, EnvelopeId, IdentityKey, KeyBundle, SignedPreKey, UserId,
};
use tokio::sync::{mpsc, oneshot};

use crate::mailbox::Hub;
pub use tables::Cursor;
pub use writer::WriterHandle;

/// Queued operations the writer may hold before callers wait (backpressure).
const WRITE_QUEUE: usize = 1024;

/// Why a storage operation failed. Nothing of a failed operation was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error (I/O, full disk, corruption detected, ...).
    #[error("storage failure: {0}")]
    Storage(String),
    /// A stored record did not decode.
    #[error("corrupt record in {table}: {reason}")]
    Corrupt {
        /// The table holding it.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The store was shut down.
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    fn storage(error: impl std::fmt::Display) -> Self {
        StoreError::Storage(error.to_string())
    }
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::storage(error)
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Result of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The device is registered (`new` is false if it already was).
    Registered {
        /// Whether this call created the registration.
        new: bool,
        /// Unclaimed one-time keys held for the device.
        one_time_keys: u32,
    },
    /// The account already has a device with a certificate at least as new.
    DeviceLimit,
    /// The device is registered under another account.
    DeviceTaken,
}

/// Result of a key upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysOutcome {
    /// Stored; the count of unclaimed one-time keys now held.
    Stored {
        /// Unclaimed one-time keys held for the device.
        one_time_keys: u32,
    },
    /// The device is not registered.
    NotRegistered,
}

/// Result of a key-bundle claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A bundle, with a one-time key removed from the store (or the fallback key).
    Bundle(Box<KeyBundle>),
    /// No such user here.
    UnknownUser,
    /// The user has not uploaded an identity key and a prekey.
    NoKeys,
}

/// An envelope to store in a local user's mailbox.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    /// Its id, for dedupe.
    pub id: EnvelopeId,
    /// The mailbox it goes to.
    pub recipient: UserId,
    /// The wire bytes, stored as they are.
    pub bytes: Bytes,
}

/// What became of one [`NewEnvelope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored under this mailbox sequence number.
    Accepted {
        /// Sequence number in the recipient's mailbox.
        seq: u64,
    },
    /// This id was stored before with the same content.
    Duplicate,
    /// This id was stored before with different content.
    IdReused,
    /// The recipient is not registered here.
    UnknownRecipient,
    /// The recipient's mailbox is at its quota.
    MailboxFull,
}

/// Limits the store enforces.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Most unacked envelopes in one mailbox.
    pub mailbox_max_envelopes: u64,
    /// How long envelope ids are remembered for dedupe.
    pub dedupe_window_ms: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            mailbox_max_envelopes: 100_000,
            dedupe_window_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Cloneable handle to the relay's database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    ops: mpsc::Sender<writer::WriteOp>,
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and starts its writer thread.
    pub fn open(
        path: &Path,
        limits: StoreLimits,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let db = Database::create(path)?;
        Self::start(db, limits, hub)
    }

    /// Like [`Store::open`], over a custom storage backend (used to inject I/O faults).
    pub fn open_with_backend(
        backend: impl StorageBackend,
        limits: StoreLimits,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let db = Database::builder().create_with_backend(backend)?;
        Self::start(db, limits, hub)
    }

    fn start(
        db: Database,
        limits: StoreLimits,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        apply::create_tables(&db)?;
        let db = Arc::new(db);
        let (ops, receiver) = mpsc::channel(WRITE_QUEUE);
        let handle = writer::spawn(db.clone(), receiver, limits, hub)?;
        Ok((Store { db, ops }, handle))
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::WriteOp,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Registers the device a verified certificate names.
    pub async fn register(&self, cert: DeviceCert) -> Result<RegisterOutcome, StoreError> {
        self.submit(|reply| writer::WriteOp::Register { cert, reply })
            .await
    }

    /// Stores Olm keys of a registered device (signatures already checked).
    pub async fn upload_keys(
        &self,
        device: DeviceId,
        identity: Option<IdentityKey>,
        one_time_keys: Vec<SignedPreKey>,
        fallback: Option<SignedPreKey>,
    ) -> Result<KeysOutcome, StoreError> {
        self.submit(|reply| writer::WriteOp::UploadKeys {
            device,
            identity,
            one_time_keys,
            fallback,
            reply,
        })
        .await
    }

    /// Hands out a key bundle of `user`, consuming one of its one-time keys.
    pub async fn claim_bundle(&self, user: UserId) -> Result<ClaimOutcome, StoreError> {
        self.submit(|reply| writer::WriteOp::Claim { user, reply })
            .await
    }

    /// Durably stores envelopes in local mailboxes; one outcome per envelope, in order.
    pub async fn store_envelopes(
        &self,
        items: Vec<NewEnvelope>,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        self.submit(|reply| writer::WriteOp::Envelopes { items, reply })
            .await
    }

    /// Deletes `user`'s mailbox up to and including `up_to`.
    pub async fn ack(&self, user: UserId, up_to: u64) -> Result<(), StoreError> {
        self.submit(|reply| writer::WriteOp::Ack { user, up_to, reply })
            .await
    }

    /// The user a device is registered under.
    pub async fn device_user(&self, device: DeviceId) -> Result<Option<UserId>, StoreError> {
        self.read(move |db| reads::device_user(db, &device)).await
    }

    /// Where a user's mailbox stands.
    pub async fn cursor(&self, user: UserId) -> Result<Cursor, StoreError> {
        self.read(move |db| reads::cursor(db, &user)).await
    }

    /// Up to `max_items` mailbox entries of `user` from sequence number `from` on, stopping
    /// once `max_bytes` is reached (at least one entry is returned if any exists).
    pub async fn mailbox_range(
        &self,
        user: UserId,
        from: u64,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        self.read(move |db| reads::mailbox_range(db, &user, from, max_items, max_bytes))
            .await
    }

    /// Unclaimed one-time keys held for a device.
    pub async fn one_time_key_count(&self, device: DeviceId) -> Result<u32, StoreError> {
        self.read(move |db| reads::one_time_key_count(db, &device))
            .await
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || query(&db))
            .await
            .map_err(|_| StoreError::Closed)?
    }
}
