//! Durable storage: a small typed API over redb, written by one batching writer thread.
//!
//! Every mutation goes through [`Store`]'s async methods, which queue an operation for the
//! writer thread. The writer applies everything that queued up meanwhile in one write
//! transaction and commits it with one fsync (a group commit), then answers each caller. A
//! caller's answer therefore always means "durable" (or a storage error: nothing stored).

pub mod fault;
mod groups;
mod mail;
mod presence;
mod reads;
mod slot;
pub mod tables;
mod txn;
mod users;
mod writer;

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use redb::{Database, StorageBackend};

use self::slot::{DbSlot, Opener};
use tidings_protocol::{
    DeviceCert, DeviceId, EnvelopeId, ErrorAnswer, GroupId, HomeRecord, IdentityKey, KeyBundle,
    SignedPreKey, UserId,
    group::{GroupError, SignedDescriptor},
};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::mailbox::Hub;
pub(crate) use presence::decode as decode_presence;
pub(crate) use reads::decode_user;
pub use tables::{Cursor, OutboxMeta, PresenceChange, PresenceRecord, UserRecord};
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
    /// A new account, and the relay holds as many as it may.
    AccountLimit,
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

/// Result of recording a home record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetHomeOutcome {
    /// Stored; `moved_away` if it names another relay.
    Stored {
        /// The user's home is now elsewhere.
        moved_away: bool,
    },
    /// A record with a higher sequence number is already known.
    Stale {
        /// Its sequence number.
        known: u64,
    },
    /// The user is not registered here.
    NotRegistered,
}

/// An envelope to store: in a local mailbox, or in the outbox for a user homed elsewhere.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    /// Its id, for dedupe.
    pub id: EnvelopeId,
    /// Who sent it.
    pub sender: UserId,
    /// Who it is for.
    pub recipient: UserId,
    /// The wire bytes, stored as they are.
    pub bytes: Bytes,
}

/// A group envelope from a local member.
#[derive(Debug, Clone)]
pub struct GroupEnvelope {
    /// Its id.
    pub id: EnvelopeId,
    /// The sending member.
    pub sender: UserId,
    /// The group.
    pub group: GroupId,
    /// The wire bytes.
    pub bytes: Bytes,
    /// The descriptor change it carries (group control envelopes).
    pub change: Option<SignedDescriptor>,
}

/// What became of a [`GroupEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutcome {
    /// Stored for `local` members here and queued for `queued` members elsewhere.
    Accepted {
        /// Members whose mailbox is here.
        local: usize,
        /// Members homed at other relays.
        queued: usize,
    },
    /// Stored before (a retry).
    Duplicate,
    /// The id was used before for other content.
    IdReused,
    /// No descriptor of the group is held here.
    UnknownGroup,
    /// The sender is not a member.
    NotMember,
    /// The descriptor change breaks the rules.
    BadDescriptor(GroupError),
    /// The outbox is at its quota.
    OutboxFull,
    /// The sender's envelopes hold their whole share of the outbox.
    OutboxShareFull,
}

/// A group envelope another relay forwarded for members homed here.
#[derive(Debug, Clone)]
pub struct GroupDelivery {
    /// Its id.
    pub id: EnvelopeId,
    /// The sending member.
    pub sender: UserId,
    /// The group.
    pub group: GroupId,
    /// The relay that forwarded it (charged for the mailbox entries it creates here).
    pub origin: libp2p::PeerId,
    /// The descriptor version the sending relay fanned out by.
    pub version: u64,
    /// The descriptor change it carries, if any: it must chain onto the versions held here,
    /// and it also reaches the members it removes.
    pub change: Option<SignedDescriptor>,
    /// The wire bytes.
    pub bytes: Bytes,
    /// Members homed here it is for.
    pub recipients: Vec<UserId>,
}

/// What became of descriptor versions sent by another relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorsOutcome {
    /// Stored; the version now held.
    Stored {
        /// The newest version held.
        version: u64,
    },
    /// A version breaks the rules.
    Rejected(GroupError),
    /// The group is not held here and no version sent names a member living here.
    NoMemberHere,
}

/// One entry a user's previous home relay hands on.
#[derive(Debug, Clone)]
pub enum HandoffItem {
    /// An envelope (deduped by id).
    Envelope(NewEnvelope),
    /// A bounce notice, as stored.
    Bounce(Bytes),
}

/// Who hands envelopes to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A local device: envelopes for users elsewhere go to the outbox.
    Client,
    /// Another relay: only envelopes for users homed here are taken, within that relay's
    /// share of the mailboxes.
    Federation(libp2p::PeerId),
}

/// What became of one [`NewEnvelope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored in a local mailbox under this sequence number.
    Accepted {
        /// Sequence number in the recipient's mailbox.
        seq: u64,
    },
    /// Stored in the outbox for forwarding, under this outbox sequence number.
    Queued {
        /// Outbox sequence number.
        seq: u64,
    },
    /// This id was stored before with the same content.
    Duplicate,
    /// This id was stored before with different content.
    IdReused,
    /// The recipient's home is not this relay (for envelopes from other relays).
    NotHere,
    /// The recipient's mailbox is at its quota.
    MailboxFull,
    /// The forwarding relay's envelopes hold their whole share of the mailboxes here.
    RelayShareFull,
    /// The outbox is at its quota.
    OutboxFull,
    /// The sender's envelopes hold their whole share of the outbox.
    OutboxShareFull,
    /// The sender or the recipient is not a member of the group.
    NotMember,
    /// This relay holds an older version of the group than the sender fanned out by.
    GroupOutOfDate,
    /// The group change does not chain onto the versions held here (forged, forked).
    BadDescriptor,
}

/// Limits the store enforces.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Most unacked envelopes in one mailbox.
    pub mailbox_max_envelopes: u64,
    /// Most bytes of unacked envelopes in one mailbox.
    pub mailbox_max_bytes: u64,
    /// Most envelopes waiting in the outbox.
    pub outbox_max_envelopes: u64,
    /// Most outbox entries one local user's envelopes may hold.
    pub outbox_max_per_user: u64,
    /// Most mailbox entries one other relay's forwards may hold here.
    pub relay_mailbox_max_envelopes: u64,
    /// How long envelope ids are remembered for dedupe.
    pub dedupe_window_ms: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            mailbox_max_envelopes: 100_000,
            mailbox_max_bytes: 256 * 1024 * 1024,
            outbox_max_envelopes: 1_000_000,
            outbox_max_per_user: 20_000,
            relay_mailbox_max_envelopes: 1_000_000,
            dedupe_window_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Limits.
    pub limits: StoreLimits,
    /// This relay's peer id (text), to tell users homed here from users who moved.
    pub self_peer: String,
}

/// Cloneable handle to the relay's database.
#[derive(Clone)]
pub struct Store {
    db: Arc<DbSlot>,
    ops: mpsc::Sender<writer::WriteOp>,
    outbox: Arc<Notify>,
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and starts its writer thread.
    pub fn open(
        path: &Path,
        config: StoreConfig,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let path = path.to_path_buf();
        Self::start(Box::new(move || Ok(Database::create(&path)?)), config, hub)
    }

    /// Like [`Store::open`], over a custom storage backend (used to inject I/O faults);
    /// `backend` is called again whenever the database is reopened.
    pub fn open_with_backend<B: StorageBackend>(
        backend: impl Fn() -> std::io::Result<B> + Send + Sync + 'static,
        config: StoreConfig,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let opener: Opener = Box::new(move || {
            let backend = backend().map_err(StoreError::storage)?;
            Ok(Database::builder().create_with_backend(backend)?)
        });
        Self::start(opener, config, hub)
    }

    fn start(
        opener: Opener,
        config: StoreConfig,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let db = Arc::new(DbSlot::open(opener)?);
        txn::create_tables(&*db.get()?)?;
        let (ops, receiver) = mpsc::channel(WRITE_QUEUE);
        let outbox = Arc::new(Notify::new());
        let outputs = writer::Outputs {
            hub,
            outbox: outbox.clone(),
        };
        let handle = writer::spawn(db.clone(), receiver, config, outputs)?;
        Ok((Store { db, ops, outbox }, handle))
    }

    /// Wakes up whenever the outbox gets new entries.
    pub fn outbox_notify(&self) -> Arc<Notify> {
        self.outbox.clone()
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

    /// Registers the device a verified certificate names; a new account only while fewer
    /// than `max_accounts` (if given) are registered.
    pub async fn register(
        &self,
        cert: DeviceCert,
        max_accounts: Option<u64>,
    ) -> Result<RegisterOutcome, StoreError> {
        self.submit(|reply| writer::WriteOp::Register {
            cert,
            max_accounts,
            reply,
        })
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

    /// Durably stores envelopes (mailbox or outbox); one outcome per envelope, in order.
    pub async fn store_envelopes(
        &self,
        items: Vec<NewEnvelope>,
        origin: Origin,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        self.submit(|reply| writer::WriteOp::Envelopes {
            items,
            origin,
            reply,
        })
        .await
    }

    /// Records a verified home record of a registered user.
    pub async fn set_home(&self, record: HomeRecord) -> Result<SetHomeOutcome, StoreError> {
        self.submit(|reply| writer::WriteOp::SetHome {
            record: Box::new(record),
            reply,
        })
        .await
    }

    /// Stores what a user's previous home handed on (the user must be homed here now).
    pub async fn handoff_in(
        &self,
        user: UserId,
        items: Vec<HandoffItem>,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        self.submit(|reply| writer::WriteOp::Handoff { user, items, reply })
            .await
    }

    /// Forgets outbox entries another relay has committed.
    pub async fn outbox_done(&self, seqs: Vec<u64>) -> Result<(), StoreError> {
        self.submit(|reply| writer::WriteOp::OutboxDone { seqs, reply })
            .await
    }

    /// Stores and fans out a group envelope from a local member.
    pub async fn store_group_envelope(
        &self,
        item: GroupEnvelope,
    ) -> Result<GroupOutcome, StoreError> {
        self.submit(|reply| writer::WriteOp::GroupEnvelope { item, reply })
            .await
    }

    /// Stores group envelopes another relay forwarded; one outcome per recipient.
    pub async fn store_group_deliveries(
        &self,
        items: Vec<GroupDelivery>,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        self.submit(|reply| writer::WriteOp::GroupForward { items, reply })
            .await
    }

    /// Checks and stores descriptor versions another relay sent. A group not held here is
    /// taken only if a version names a member living here, or if `awaited` (this relay asked
    /// that relay for the group: it forwarded an envelope for members here).
    pub async fn store_descriptors(
        &self,
        versions: Vec<SignedDescriptor>,
        awaited: bool,
    ) -> Result<DescriptorsOutcome, StoreError> {
        self.submit(|reply| writer::WriteOp::Descriptors {
            versions,
            awaited,
            reply,
        })
        .await
    }

    /// Descriptor versions of `group` from `from` on (at most `limit`), oldest first.
    pub async fn group_versions(
        &self,
        group: GroupId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<SignedDescriptor>, StoreError> {
        self.read(move |db| reads::group_versions(db, &group, from, limit))
            .await
    }

    /// The newest descriptor version held for `group` (0: none).
    pub async fn group_version(&self, group: GroupId) -> Result<u64, StoreError> {
        self.read(move |db| reads::group_version(db, &group)).await
    }

    /// Moves outbox entries whose recipient now lives here into their mailbox.
    pub async fn outbox_to_mailbox(&self, seqs: Vec<u64>) -> Result<(), StoreError> {
        self.submit(|reply| writer::WriteOp::OutboxToMailbox { seqs, reply })
            .await
    }

    /// Gives up on an outbox entry, leaving a bounce in its sender's mailbox.
    pub async fn bounce(&self, seq: u64, reason: ErrorAnswer) -> Result<(), StoreError> {
        self.submit(|reply| writer::WriteOp::Bounce { seq, reason, reply })
            .await
    }

    /// Outbox entries after `after`, oldest first, at most `limit`.
    pub async fn outbox_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxMeta)>, StoreError> {
        self.read(move |db| reads::outbox_after(db, after, limit))
            .await
    }

    /// The bytes of envelopes in the outbox, by envelope id (ids gone meanwhile are left out).
    pub async fn outbox_bodies(
        &self,
        ids: Vec<EnvelopeId>,
    ) -> Result<Vec<(EnvelopeId, Bytes)>, StoreError> {
        self.read(move |db| reads::outbox_bodies(db, &ids)).await
    }

    /// Everything known about a user registered here.
    pub async fn user(&self, user: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.read(move |db| reads::user(db, &user)).await
    }

    /// The device certificates of those of `users` registered here (for forwards).
    pub async fn device_certs(&self, users: Vec<UserId>) -> Result<Vec<DeviceCert>, StoreError> {
        self.read(move |db| reads::device_certs(db, &users)).await
    }

    /// Every user record (for republishing home records and resuming handoffs at start).
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.read(reads::users).await
    }

    /// Deletes `user`'s mailbox up to and including `up_to`.
    pub async fn ack(&self, user: UserId, up_to: u64) -> Result<(), StoreError> {
        self.submit(|reply| writer::WriteOp::Ack { user, up_to, reply })
            .await
    }

    /// Changes a local user's presence settings or last seen.
    pub async fn change_presence(
        &self,
        user: UserId,
        change: PresenceChange,
    ) -> Result<(), StoreError> {
        self.submit(|reply| writer::WriteOp::Presence {
            user,
            change,
            reply,
        })
        .await
    }

    /// A local user's presence settings and last seen (defaults if never set).
    pub async fn presence(&self, user: UserId) -> Result<PresenceRecord, StoreError> {
        self.read(move |db| presence::read(db, &user)).await
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
        let slot = self.db.clone();
        tokio::task::spawn_blocking(move || query(&*slot.get()?))
            .await
            .map_err(|_| StoreError::Closed)?
    }
}
