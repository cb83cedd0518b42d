//! Durable storage: a small typed API over redb, written by one batching writer thread.
//!
//! Every mutation goes through [`Store`]'s async methods, which queue an operation for the
//! writer thread. The writer applies everything that queued up meanwhile in one write
//! transaction and commits it with one fsync (a group commit), then answers each caller. A
//! caller's answer therefore always means "durable" (or a storage error: nothing stored).
//!
//! A new write is one method here, which queues a closure over the batch's tables with a
//! reply of that closure's outcome type (`op.rs`), plus the `Tables` method the closure calls
//! (`users.rs`, `mail.rs`, `groups.rs`, `presence.rs`, `devices.rs`, `media.rs`); the writer needs no change.

mod admin;
mod admin_remove;
mod config;
mod devices;
#[cfg(feature = "test-utils")]
pub mod fault;
mod groups;
mod mail;
mod media;
mod migrate;
mod op;
mod outcomes;
mod presence;
mod profiles;
mod push;
mod reads;
pub mod schema;
mod slot;
pub mod status;
pub mod status_media;
pub mod tables;
#[cfg(test)]
mod tests;
mod txn;
mod users;
mod writer;

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use redb::Database;

use self::{
    op::WriteOp,
    slot::{DbSlot, Opener},
    txn::Tables,
};
use tidings_protocol::{
    Address, DeviceCert, DeviceId, EnvelopeId, ErrorAnswer, GroupId, HomeRecord, IdentityKey,
    SignedDeviceList, SignedPreKey, UserId, group::SignedDescriptor,
};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::mailbox::Hub;
pub use admin::{DeviceUsage, StoreTotals, SuspendOutcome, UserUsage, UserUsages};
pub use admin_remove::{Removal, RemoveOutcome};
pub use config::{StoreConfig, StoreLimits};
pub use devices::DeviceListOutcome;
pub use media::{MediaBlob, MediaIndex, MediaUpload, UploadStart};
#[cfg(feature = "test-utils")]
pub(crate) use media::{decode_media_blob, decode_media_upload};
pub use outcomes::*;
#[cfg(feature = "test-utils")]
pub(crate) use presence::decode as decode_presence;
pub use profiles::PutProfileOutcome;
#[cfg(feature = "test-utils")]
pub(crate) use profiles::decode as decode_profile;
#[cfg(feature = "test-utils")]
pub(crate) use push::decode as decode_push_record;
pub use push::{PushRecord, SetPushOutcome};
#[cfg(feature = "test-utils")]
pub(crate) use reads::{decode_device, decode_user};
pub use tables::{Cursor, DeviceRecord, OutboxMeta, PresenceChange, PresenceRecord, UserRecord};
pub use tidings_protocol::store::StoreError;
pub use writer::WriterHandle;

/// Queued operations the writer may hold before callers wait (backpressure).
const WRITE_QUEUE: usize = 1024;
/// What a local group envelope counts against a batch's limit (its fan-out is unknown
/// until it is planned inside the batch).
const GROUP_ENVELOPE_WEIGHT: usize = 64;

/// Cloneable handle to the relay's database.
#[derive(Clone)]
pub struct Store {
    db: Arc<DbSlot>,
    ops: mpsc::Sender<WriteOp>,
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
        let cache = config.cache_bytes;
        let opener: Opener =
            Box::new(move || Ok(Database::builder().set_cache_size(cache).create(&path)?));
        Self::start(opener, config, hub)
    }

    /// Like [`Store::open`], over a custom storage backend (used to inject I/O faults);
    /// `backend` is called again whenever the database is reopened.
    #[cfg(feature = "test-utils")]
    pub fn open_with_backend<B: redb::StorageBackend>(
        backend: impl Fn() -> std::io::Result<B> + Send + Sync + 'static,
        config: StoreConfig,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let cache = config.cache_bytes;
        let opener: Opener = Box::new(move || {
            let backend =
                backend().map_err(|error| StoreError::io("opening the storage backend", error))?;
            Ok(Database::builder()
                .set_cache_size(cache)
                .create_with_backend(backend)?)
        });
        Self::start(opener, config, hub)
    }

    fn start(
        opener: Opener,
        config: StoreConfig,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let db = Arc::new(DbSlot::open(opener)?);
        schema::RELAY.apply(&*db.get()?)?;
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

    /// Reaches the open database when called (for online backups); holds neither the writer
    /// nor the database in between.
    pub(crate) fn database_getter(
        &self,
    ) -> Arc<dyn Fn() -> Result<Arc<Database>, StoreError> + Send + Sync> {
        let slot = self.db.clone();
        Arc::new(move || slot.get())
    }

    /// Wakes up whenever the outbox gets new entries.
    pub fn outbox_notify(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// Queues `work` for the writer and waits until the batch holding it is committed.
    /// `weight`: the entries it may store, counted against the batch's limit.
    async fn write<T: Send + 'static>(
        &self,
        weight: usize,
        work: impl FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(op::queue(weight, work, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Registers the device a verified certificate names, without a new device list (see
    /// [`Store::register_device`]).
    pub async fn register(
        &self,
        cert: DeviceCert,
        max_accounts: Option<u64>,
    ) -> Result<RegisterOutcome, StoreError> {
        self.register_device(cert, None, max_accounts)
            .await
            .map(|(outcome, _)| outcome)
    }

    /// Registers the device a verified certificate names under the account's device list
    /// (`list`, verified, stored with it; or the held one); a new account only while fewer
    /// than `max_accounts` (if given) are registered. Also returns the devices a stored list
    /// revoked.
    pub async fn register_device(
        &self,
        cert: DeviceCert,
        list: Option<SignedDeviceList>,
        max_accounts: Option<u64>,
    ) -> Result<(RegisterOutcome, Vec<DeviceId>), StoreError> {
        self.write(1, move |t| t.register(&cert, list.as_ref(), max_accounts))
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
        self.write(1, move |t| {
            t.upload_keys(
                &device,
                identity.as_ref(),
                &one_time_keys,
                fallback.as_ref(),
            )
        })
        .await
    }

    /// Hands out a key bundle of device `address`, consuming one of its one-time keys.
    pub async fn claim_bundle(&self, address: Address) -> Result<ClaimOutcome, StoreError> {
        self.write(1, move |t| t.claim(&address)).await
    }

    /// Durably stores envelopes (mailbox or outbox); one outcome per envelope, in order.
    pub async fn store_envelopes(
        &self,
        items: Vec<NewEnvelope>,
        origin: Origin,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        self.write(items.len(), move |t| t.store_envelopes(&items, origin))
            .await
    }

    /// Records a verified home record of a registered user.
    pub async fn set_home(&self, record: HomeRecord) -> Result<SetHomeOutcome, StoreError> {
        self.write(1, move |t| t.set_home(&record)).await
    }

    /// Stores what a user's previous home handed on (the user must be homed here now).
    pub async fn handoff_in(
        &self,
        user: UserId,
        items: Vec<HandoffItem>,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        self.write(items.len(), move |t| t.handoff_in(&user, &items))
            .await
    }

    /// Forgets outbox entries another relay has committed.
    pub async fn outbox_done(&self, seqs: Vec<u64>) -> Result<(), StoreError> {
        self.write(seqs.len(), move |t| t.outbox_done(&seqs)).await
    }

    /// Stores and fans out a group envelope from a local member.
    pub async fn store_group_envelope(
        &self,
        item: GroupEnvelope,
    ) -> Result<GroupOutcome, StoreError> {
        self.write(GROUP_ENVELOPE_WEIGHT, move |t| {
            t.store_group_envelope(&item)
        })
        .await
    }

    /// Stores group envelopes another relay forwarded; one outcome per recipient.
    pub async fn store_group_deliveries(
        &self,
        items: Vec<GroupDelivery>,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        let weight = items.iter().map(|item| item.recipients.len()).sum();
        self.write(weight, move |t| t.store_group_deliveries(&items))
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
        self.write(1, move |t| t.store_descriptors(&versions, awaited))
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
        self.write(seqs.len(), move |t| t.outbox_to_mailbox(&seqs))
            .await
    }

    /// Gives up on an outbox entry, leaving a bounce in its sender's mailbox.
    pub async fn bounce(&self, seq: u64, reason: ErrorAnswer) -> Result<(), StoreError> {
        self.write(1, move |t| t.bounce(seq, &reason)).await
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

    /// The certificates of those of `devices` registered here (for forwards).
    pub async fn device_certs(&self, devices: Vec<Address>) -> Result<Vec<DeviceCert>, StoreError> {
        self.read(move |db| reads::device_certs(db, &devices)).await
    }

    /// The record of a registered device.
    pub async fn device(&self, device: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        self.read(move |db| reads::device(db, &device)).await
    }

    /// The registered devices of `user`, with their records.
    pub async fn devices_of(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read(move |db| devices::registered(db, &user)).await
    }

    /// Records when a device's last subscribed session ended.
    pub async fn device_seen(&self, device: DeviceId, at_ms: u64) -> Result<(), StoreError> {
        self.write(1, move |t| t.device_seen(&device, at_ms)).await
    }

    /// Every user registered here and their record (for republishing home records and
    /// resuming handoffs at start).
    pub async fn users(&self) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        self.read(reads::users).await
    }

    /// Deletes `device`'s mailbox up to and including `up_to`.
    pub async fn ack(&self, device: DeviceId, up_to: u64) -> Result<(), StoreError> {
        self.write(1, move |t| t.ack(&device, up_to)).await
    }

    /// Changes a local user's presence settings or last seen.
    pub async fn change_presence(
        &self,
        user: UserId,
        change: PresenceChange,
    ) -> Result<(), StoreError> {
        self.write(1, move |t| t.change_presence(&user, &change))
            .await
    }

    /// A local user's presence settings and last seen (defaults if never set).
    pub async fn presence(&self, user: UserId) -> Result<PresenceRecord, StoreError> {
        self.read(move |db| presence::read(db, &user)).await
    }

    /// Keeps a verified device list as its user's list (see [`DeviceListOutcome`]).
    pub async fn publish_device_list(
        &self,
        list: SignedDeviceList,
    ) -> Result<DeviceListOutcome, StoreError> {
        self.write(1, move |t| t.publish_device_list(&list)).await
    }

    /// The device list held for `user` if they are homed at the relay `self_peer` (device
    /// lists are served only by the home relay).
    pub async fn home_device_list(
        &self,
        user: UserId,
        self_peer: String,
    ) -> Result<Option<SignedDeviceList>, StoreError> {
        self.read(move |db| devices::read_if_home(db, &user, &self_peer))
            .await
    }

    /// The device list held for `user`, if any.
    pub async fn device_list(&self, user: UserId) -> Result<Option<SignedDeviceList>, StoreError> {
        self.read(move |db| devices::read(db, &user)).await
    }

    /// The user a device is registered under.
    pub async fn device_user(&self, device: DeviceId) -> Result<Option<UserId>, StoreError> {
        self.read(move |db| reads::device_user(db, &device)).await
    }

    /// Where a device's mailbox stands.
    pub async fn cursor(&self, device: DeviceId) -> Result<Cursor, StoreError> {
        self.read(move |db| reads::cursor(db, &device)).await
    }

    /// Up to `max_items` mailbox entries of `device` from sequence number `from` on,
    /// stopping once `max_bytes` is reached (at least one entry is returned if any exists).
    pub async fn mailbox_range(
        &self,
        device: DeviceId,
        from: u64,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, StoreError> {
        self.read(move |db| reads::mailbox_range(db, &device, from, max_items, max_bytes))
            .await
    }

    /// Unclaimed one-time keys held for a device.
    pub async fn one_time_key_count(&self, device: DeviceId) -> Result<u32, StoreError> {
        self.read(move |db| reads::one_time_key_count(db, &device))
            .await
    }

    /// Stores (`Some`) or clears (`None`) the push subscription of `device` of `user`.
    pub async fn set_push(
        &self,
        device: DeviceId,
        user: UserId,
        subscription: Option<tidings_protocol::push::PushSubscription>,
    ) -> Result<SetPushOutcome, StoreError> {
        self.write(1, move |t| {
            t.set_push(&device, &user, subscription.as_ref())
        })
        .await
    }

    /// Deletes the push subscription of `device` if it still has `endpoint`; true if deleted.
    pub async fn drop_push(&self, device: DeviceId, endpoint: String) -> Result<bool, StoreError> {
        self.write(1, move |t| t.drop_push(&device, &endpoint))
            .await
    }

    /// The push subscription of `device`, if any.
    pub async fn push_subscription(
        &self,
        device: DeviceId,
    ) -> Result<Option<PushRecord>, StoreError> {
        self.read(move |db| push::read(db, &device)).await
    }

    /// Every stored push subscription (at start).
    pub async fn push_subscriptions(&self) -> Result<Vec<(DeviceId, PushRecord)>, StoreError> {
        self.read(push::read_all).await
    }

    /// Keeps a sealed profile `device` stored, if newer (see [`PutProfileOutcome`]).
    pub async fn put_profile(
        &self,
        device: DeviceId,
        profile: tidings_protocol::profile::SealedProfile,
    ) -> Result<PutProfileOutcome, StoreError> {
        self.write(1, move |t| t.put_profile(&device, &profile))
            .await
    }

    /// The sealed profile held for `user`, if any.
    pub async fn profile(
        &self,
        user: UserId,
    ) -> Result<Option<tidings_protocol::profile::SealedProfile>, StoreError> {
        self.read(move |db| profiles::read(db, &user)).await
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
