//! One write transaction per batch: the tables it opens and the driver that applies ops.

use std::collections::HashMap;

use redb::{Database, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use tidings_protocol::{DeviceId, UserId, codec};

use tidings_protocol::store::StoreError;

use super::{
    config::StoreConfig,
    tables::{
        self, BLOB_REFS, BLOBS, CURSORS, Cursor, DEVICE_LISTS, DEVICE_RECORDS, DEVICES,
        DeviceRecord, GROUP_HEADS, GROUP_VERSIONS, MAILBOX, MAILBOX_BYTES, MAILBOX_ORIGINS,
        MEDIA_BLOBS, MEDIA_BYTES, MEDIA_REFS, MEDIA_UPLOADS, ONE_TIME_KEYS, OUTBOX_BODY,
        OUTBOX_META, OUTBOX_REFS, OUTBOX_SENDERS, PRESENCE, PUSH_SUBSCRIPTIONS, RELAY_HOLDS,
        USER_DEVICES, USERS, UserRecord,
    },
};
use crate::mailbox::Publication;

/// Largest user record we expect to read back.
const MAX_USER_RECORD: usize = 16 * 1024;

/// Largest device record we expect to read back.
pub(super) const MAX_DEVICE_RECORD: usize = 16 * 1024;

type Bytes32 = &'static [u8; 32];

/// Creates every fixed table so readers never meet a missing one.
pub fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(USERS)?;
    txn.open_table(DEVICES)?;
    txn.open_table(DEVICE_RECORDS)?;
    txn.open_table(USER_DEVICES)?;
    txn.open_table(ONE_TIME_KEYS)?;
    txn.open_table(CURSORS)?;
    txn.open_table(MAILBOX)?;
    txn.open_table(OUTBOX_META)?;
    txn.open_table(OUTBOX_BODY)?;
    txn.open_table(OUTBOX_REFS)?;
    txn.open_table(OUTBOX_SENDERS)?;
    txn.open_table(MAILBOX_ORIGINS)?;
    txn.open_table(MAILBOX_BYTES)?;
    txn.open_table(RELAY_HOLDS)?;
    txn.open_table(BLOBS)?;
    txn.open_table(BLOB_REFS)?;
    txn.open_table(GROUP_VERSIONS)?;
    txn.open_table(GROUP_HEADS)?;
    txn.open_table(PRESENCE)?;
    txn.open_table(DEVICE_LISTS)?;
    txn.open_table(MEDIA_BLOBS)?;
    txn.open_table(MEDIA_UPLOADS)?;
    txn.open_table(MEDIA_BYTES)?;
    txn.open_table(MEDIA_REFS)?;
    txn.open_table(PUSH_SUBSCRIPTIONS)?;
    txn.open_table(tables::PROFILES)?;
    txn.open_table(tables::STATUS_MEDIA)?;
    txn.open_table(tables::SUSPENDED)?;
    txn.open_table(tables::REMOVED)?;
    txn.commit()?;
    Ok(())
}

/// What the writer keeps between batches (it is the only writer, so this stays exact).
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterState {
    /// Entries in the outbox.
    pub outbox_len: u64,
    /// The last outbox sequence number handed out. Never reused while the relay runs, even
    /// after the entry is gone: the forwarder only loads numbers above what it has seen.
    pub outbox_seq: u64,
}

impl WriterState {
    /// Reads the state from the database at start.
    pub fn load(db: &Database) -> Result<Self, StoreError> {
        let txn = redb::ReadableDatabase::begin_read(db)?;
        let table = txn.open_table(OUTBOX_META)?;
        let outbox_seq = table.last()?.map(|(seq, _)| seq.value()).unwrap_or(0);
        Ok(Self {
            outbox_len: table.len()?,
            outbox_seq,
        })
    }
}

/// What a committed batch produced besides the answers.
#[derive(Default)]
pub struct Effects {
    /// Mailbox entries to hand to subscribed sessions.
    pub publications: Vec<Publication>,
    /// Whether the outbox got new entries (the forwarder should look).
    pub outbox_grew: bool,
    /// Outbox entries another relay confirmed (for the metrics).
    pub forwarded: usize,
}

/// The tables of one write transaction, opened once per batch.
pub(super) struct Tables<'txn> {
    pub users: Table<'txn, Bytes32, &'static [u8]>,
    pub devices: Table<'txn, Bytes32, Bytes32>,
    pub device_records: Table<'txn, Bytes32, &'static [u8]>,
    pub user_devices: Table<'txn, &'static [u8; 64], ()>,
    pub one_time_keys: Table<'txn, &'static [u8; 64], &'static [u8]>,
    pub cursors: Table<'txn, Bytes32, &'static [u8; 16]>,
    pub mailbox: Table<'txn, &'static [u8; 40], &'static [u8]>,
    pub outbox_meta: Table<'txn, u64, &'static [u8; 88]>,
    pub outbox_body: Table<'txn, &'static [u8; 16], &'static [u8]>,
    pub outbox_refs: Table<'txn, &'static [u8; 16], u64>,
    pub outbox_senders: Table<'txn, Bytes32, u64>,
    pub mailbox_bytes: Table<'txn, Bytes32, u64>,
    pub mailbox_origins: Table<'txn, &'static [u8; 40], &'static [u8; 16]>,
    pub relay_holds: Table<'txn, &'static [u8; 16], u64>,
    pub blobs: Table<'txn, &'static [u8; 16], &'static [u8]>,
    pub blob_refs: Table<'txn, &'static [u8; 16], u64>,
    pub group_versions: Table<'txn, &'static [u8; 24], &'static [u8]>,
    pub group_heads: Table<'txn, &'static [u8; 16], u64>,
    pub presence: Table<'txn, Bytes32, &'static [u8]>,
    pub device_lists: Table<'txn, Bytes32, &'static [u8]>,
    pub media_blobs: Table<'txn, Bytes32, &'static [u8]>,
    pub media_uploads: Table<'txn, &'static [u8; 64], &'static [u8]>,
    pub media_bytes: Table<'txn, Bytes32, u64>,
    pub media_refs: Table<'txn, Bytes32, u64>,
    pub push_subscriptions: Table<'txn, Bytes32, &'static [u8]>,
    pub profiles: Table<'txn, Bytes32, &'static [u8]>,
    pub status_media: Table<'txn, &'static [u8], &'static [u8]>,
    pub seen_now: Table<'txn, &'static tables::SeenKey, &'static [u8; 16]>,
    pub seen_before: Table<'txn, &'static tables::SeenKey, &'static [u8; 16]>,
    /// Users the operator suspended (`tables::SUSPENDED`).
    pub suspended: Table<'txn, Bytes32, u64>,
    /// Users the operator removed, until their home record expires (`tables::REMOVED`).
    pub removed: Table<'txn, Bytes32, u64>,
    /// Cursors (by device) changed in this batch, written back once at the end.
    pub dirty_cursors: HashMap<DeviceId, Cursor>,
    /// Outbox entries per sender changed in this batch, written back once at the end.
    pub dirty_senders: HashMap<UserId, u64>,
    /// Mailbox sizes (by device) changed in this batch, written back once at the end.
    pub dirty_bytes: HashMap<DeviceId, u64>,
    /// Mailbox entries per origin relay changed in this batch, written back at the end.
    pub dirty_holds: HashMap<[u8; 16], u64>,
    /// The blobs the envelope last pushed to a mailbox names (a group fan-out pushes the
    /// same bytes to every member's devices: read its header once). Holding the bytes keeps
    /// their address from being reused by other bytes.
    pub media_named: Option<(bytes::Bytes, Vec<tidings_protocol::BlobId>)>,
    pub now_ms: u64,
    pub config: &'txn StoreConfig,
    pub state: &'txn mut WriterState,
    pub effects: Effects,
}

/// Runs `apply` (every operation of a batch, in order) on the tables of one write
/// transaction and commits it. On any error nothing is committed and the writer's counters
/// are as before.
pub fn apply_batch(
    db: &Database,
    config: &StoreConfig,
    state: &mut WriterState,
    apply: impl FnOnce(&mut Tables<'_>) -> Result<(), StoreError>,
) -> Result<Effects, StoreError> {
    let before = *state;
    let applied = apply_and_commit(db, config, state, apply);
    if applied.is_err() {
        *state = before;
    }
    applied
}

fn apply_and_commit(
    db: &Database,
    config: &StoreConfig,
    state: &mut WriterState,
    apply: impl FnOnce(&mut Tables<'_>) -> Result<(), StoreError>,
) -> Result<Effects, StoreError> {
    let now_ms = tidings_protocol::now_ms();
    let generation = now_ms / (config.limits.dedupe_window_ms / 2).max(1);
    let txn = db.begin_write()?;
    drop_old_seen_tables(&txn, generation)?;
    let effects;
    {
        let seen_now_name = tables::seen_table(generation);
        let seen_before_name = tables::seen_table(generation.saturating_sub(1));
        let mut t = Tables {
            users: txn.open_table(USERS)?,
            devices: txn.open_table(DEVICES)?,
            device_records: txn.open_table(DEVICE_RECORDS)?,
            user_devices: txn.open_table(USER_DEVICES)?,
            one_time_keys: txn.open_table(ONE_TIME_KEYS)?,
            cursors: txn.open_table(CURSORS)?,
            mailbox: txn.open_table(MAILBOX)?,
            outbox_meta: txn.open_table(OUTBOX_META)?,
            outbox_body: txn.open_table(OUTBOX_BODY)?,
            outbox_refs: txn.open_table(OUTBOX_REFS)?,
            outbox_senders: txn.open_table(OUTBOX_SENDERS)?,
            mailbox_bytes: txn.open_table(MAILBOX_BYTES)?,
            mailbox_origins: txn.open_table(MAILBOX_ORIGINS)?,
            relay_holds: txn.open_table(RELAY_HOLDS)?,
            blobs: txn.open_table(BLOBS)?,
            blob_refs: txn.open_table(BLOB_REFS)?,
            group_versions: txn.open_table(GROUP_VERSIONS)?,
            group_heads: txn.open_table(GROUP_HEADS)?,
            presence: txn.open_table(PRESENCE)?,
            device_lists: txn.open_table(DEVICE_LISTS)?,
            media_blobs: txn.open_table(MEDIA_BLOBS)?,
            media_uploads: txn.open_table(MEDIA_UPLOADS)?,
            media_bytes: txn.open_table(MEDIA_BYTES)?,
            media_refs: txn.open_table(MEDIA_REFS)?,
            push_subscriptions: txn.open_table(PUSH_SUBSCRIPTIONS)?,
            profiles: txn.open_table(tables::PROFILES)?,
            status_media: txn.open_table(tables::STATUS_MEDIA)?,
            seen_now: txn.open_table(redb::TableDefinition::new(&seen_now_name))?,
            seen_before: txn.open_table(redb::TableDefinition::new(&seen_before_name))?,
            suspended: txn.open_table(tables::SUSPENDED)?,
            removed: txn.open_table(tables::REMOVED)?,
            dirty_cursors: HashMap::new(),
            dirty_senders: HashMap::new(),
            dirty_bytes: HashMap::new(),
            dirty_holds: HashMap::new(),
            media_named: None,
            now_ms,
            config,
            state,
            effects: Effects::default(),
        };
        apply(&mut t)?;
        for (device, cursor) in &t.dirty_cursors {
            t.cursors.insert(device.as_bytes(), &cursor.to_bytes())?;
        }
        for (device, bytes) in &t.dirty_bytes {
            if *bytes == 0 {
                t.mailbox_bytes.remove(device.as_bytes())?;
            } else {
                t.mailbox_bytes.insert(device.as_bytes(), *bytes)?;
            }
        }
        for (relay, entries) in &t.dirty_holds {
            if *entries == 0 {
                t.relay_holds.remove(relay)?;
            } else {
                t.relay_holds.insert(relay, *entries)?;
            }
        }
        for (user, entries) in &t.dirty_senders {
            if *entries == 0 {
                t.outbox_senders.remove(user.as_bytes())?;
            } else {
                t.outbox_senders.insert(user.as_bytes(), *entries)?;
            }
        }
        effects = t.effects;
    }
    txn.commit()?;
    Ok(effects)
}

/// Deletes dedupe generations older than the previous one, and the tables of earlier
/// versions (keyed by bare envelope id).
fn drop_old_seen_tables(txn: &WriteTransaction, generation: u64) -> Result<(), StoreError> {
    let mut stale = Vec::new();
    for handle in txn.list_tables()? {
        let name = redb::TableHandle::name(&handle);
        if let Some(old) = name.strip_prefix(tables::SEEN_PREFIX) {
            if old.parse::<u64>().is_ok_and(|g| g + 1 < generation) {
                stale.push((name.to_string(), false));
            }
        } else if name.starts_with(tables::LEGACY_SEEN_PREFIX) {
            stale.push((name.to_string(), true));
        }
    }
    for (name, legacy) in stale {
        if legacy {
            let definition: redb::TableDefinition<&[u8; 16], &[u8; 16]> =
                redb::TableDefinition::new(&name);
            txn.delete_table(definition)?;
        } else {
            let definition: redb::TableDefinition<&tables::SeenKey, &[u8; 16]> =
                redb::TableDefinition::new(&name);
            txn.delete_table(definition)?;
        }
    }
    Ok(())
}

pub(super) fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(table, reason)
}

impl Tables<'_> {
    pub fn user(&self, user: &UserId) -> Result<Option<UserRecord>, StoreError> {
        match self.users.get(user.as_bytes())? {
            Some(bytes) => codec::decode(bytes.value(), MAX_USER_RECORD)
                .map(Some)
                .map_err(|error| corrupt("users", error)),
            None => Ok(None),
        }
    }

    pub fn put_user(&mut self, user: &UserId, record: &UserRecord) -> Result<(), StoreError> {
        self.users
            .insert(user.as_bytes(), codec::encode(record).as_slice())?;
        Ok(())
    }

    pub fn cursor(&self, device: &DeviceId) -> Result<Cursor, StoreError> {
        if let Some(cursor) = self.dirty_cursors.get(device) {
            return Ok(*cursor);
        }
        Ok(self
            .cursors
            .get(device.as_bytes())?
            .map(|bytes| Cursor::from_bytes(bytes.value()))
            .unwrap_or_default())
    }

    /// Whether `user` is registered here and this relay is their home.
    pub fn is_local(&self, user: &UserId) -> Result<bool, StoreError> {
        Ok(self
            .user(user)?
            .is_some_and(|record| record.is_home(&self.config.self_peer)))
    }
}

impl Tables<'_> {
    pub fn device_record(&self, device: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        match self.device_records.get(device.as_bytes())? {
            Some(bytes) => codec::decode(bytes.value(), MAX_DEVICE_RECORD)
                .map(Some)
                .map_err(|error| corrupt("device_records", error)),
            None => Ok(None),
        }
    }

    pub fn put_device_record(&mut self, record: &DeviceRecord) -> Result<(), StoreError> {
        self.device_records.insert(
            record.cert.device.as_bytes(),
            codec::encode(record).as_slice(),
        )?;
        Ok(())
    }

    /// The account `device` is registered under here, if any.
    pub fn device_owner(&self, device: &DeviceId) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .devices
            .get(device.as_bytes())?
            .map(|user| UserId::from_bytes(*user.value())))
    }

    /// The devices `user` has registered here, in id order.
    pub fn devices_of(&self, user: &UserId) -> Result<Vec<DeviceId>, StoreError> {
        let start = tables::user_device_key(user, &DeviceId::from_bytes([0; 32]));
        let end = tables::user_device_key(user, &DeviceId::from_bytes([0xff; 32]));
        let mut out = Vec::new();
        for entry in self.user_devices.range::<&[u8; 64]>(&start..=&end)? {
            let (key, _) = entry?;
            out.push(tables::device_of_key(key.value()));
        }
        Ok(out)
    }
}
