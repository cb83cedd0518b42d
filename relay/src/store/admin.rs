//! What the admin socket reads and changes: totals over the tables, one user's usage, and
//! suspending a user (removal is `admin_remove.rs`).

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tidings_protocol::{DeviceId, UserId, store::StoreError};

use super::{
    Store, devices,
    tables::{
        CURSORS, Cursor, MAILBOX_BYTES, MEDIA_BYTES, MEDIA_UPLOADS, OUTBOX_BODY, OUTBOX_META,
        OUTBOX_SENDERS, SUSPENDED, USERS, UserRecord, media_upload_of_key,
    },
    txn::Tables,
};

/// Counts over the whole store, for `tidings-relay status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreTotals {
    /// Users registered here (homed here or moved away and still handing over).
    pub users: u64,
    /// Users suspended by the operator.
    pub suspended_users: u64,
    /// Devices registered here.
    pub devices: u64,
    /// Entries waiting in all mailboxes.
    pub mailbox_entries: u64,
    /// Bytes of those entries (a group envelope counts once per mailbox it sits in).
    pub mailbox_bytes: u64,
    /// Entries waiting in the outbox for other relays.
    pub outbox_entries: u64,
    /// Bytes of the envelopes the outbox holds (each stored once).
    pub outbox_bytes: u64,
}

/// One device's mailbox, for `tidings-relay users show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUsage {
    /// The device.
    pub device: DeviceId,
    /// When it registered here.
    pub registered_at_ms: u64,
    /// When its last subscribed session ended.
    pub last_seen_ms: Option<u64>,
    /// Entries waiting for it.
    pub mailbox_entries: u64,
    /// Their bytes.
    pub mailbox_bytes: u64,
}

/// What one user holds here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUsage {
    /// The user's record.
    pub record: UserRecord,
    /// When the operator suspended them, if they are suspended.
    pub suspended_at_ms: Option<u64>,
    /// Their devices' mailboxes.
    pub devices: Vec<DeviceUsage>,
    /// Entries of theirs waiting in the outbox.
    pub outbox_entries: u64,
    /// Media bytes charged to them (blobs they uploaded first, uploads in progress).
    pub media_bytes: u64,
    /// Their uploads in progress.
    pub media_uploads: u64,
}

fn totals(db: &Database) -> Result<StoreTotals, StoreError> {
    let txn = db.begin_read()?;
    let users = txn.open_table(USERS)?;
    let mut totals = StoreTotals {
        users: users.len()?,
        devices: txn.open_table(super::tables::DEVICES)?.len()?,
        outbox_entries: txn.open_table(OUTBOX_META)?.len()?,
        ..StoreTotals::default()
    };
    totals.suspended_users = txn.open_table(SUSPENDED)?.len()?;
    for entry in txn.open_table(CURSORS)?.iter()? {
        let (_, cursor) = entry?;
        totals.mailbox_entries += Cursor::from_bytes(cursor.value()).pending();
    }
    for entry in txn.open_table(MAILBOX_BYTES)?.iter()? {
        let (_, bytes) = entry?;
        totals.mailbox_bytes += bytes.value();
    }
    for entry in txn.open_table(OUTBOX_BODY)?.iter()? {
        let (_, body) = entry?;
        totals.outbox_bytes += body.value().len() as u64;
    }
    Ok(totals)
}

fn usage(db: &Database, user: &UserId) -> Result<Option<UserUsage>, StoreError> {
    let Some(record) = super::reads::user(db, user)? else {
        return Ok(None);
    };
    let registered = devices::registered(db, user)?;
    let txn = db.begin_read()?;
    let cursors = txn.open_table(CURSORS)?;
    let mailbox_bytes = txn.open_table(MAILBOX_BYTES)?;
    let mut devices = Vec::with_capacity(registered.len());
    for device in registered {
        let id = device.cert.device;
        let cursor = cursors
            .get(id.as_bytes())?
            .map(|cursor| Cursor::from_bytes(cursor.value()))
            .unwrap_or_default();
        devices.push(DeviceUsage {
            device: id,
            registered_at_ms: device.registered_at_ms,
            last_seen_ms: device.last_seen_ms,
            mailbox_entries: cursor.pending(),
            mailbox_bytes: mailbox_bytes
                .get(id.as_bytes())?
                .map(|bytes| bytes.value())
                .unwrap_or(0),
        });
    }
    let outbox_entries = txn
        .open_table(OUTBOX_SENDERS)?
        .get(user.as_bytes())?
        .map(|count| count.value())
        .unwrap_or(0);
    let media_bytes = txn
        .open_table(MEDIA_BYTES)?
        .get(user.as_bytes())?
        .map(|held| held.value())
        .unwrap_or(0);
    let suspended_at_ms = txn
        .open_table(SUSPENDED)?
        .get(user.as_bytes())?
        .map(|at| at.value());
    let mut media_uploads = 0;
    let uploads = txn.open_table(MEDIA_UPLOADS)?;
    let start =
        super::tables::media_upload_key(user, &tidings_protocol::BlobId::from_bytes([0; 32]));
    let end =
        super::tables::media_upload_key(user, &tidings_protocol::BlobId::from_bytes([0xff; 32]));
    for entry in uploads.range::<&[u8; 64]>(&start..=&end)? {
        let (key, _) = entry?;
        if media_upload_of_key(key.value()).0 == *user {
            media_uploads += 1;
        }
    }
    Ok(Some(UserUsage {
        record,
        suspended_at_ms,
        devices,
        outbox_entries,
        media_bytes,
        media_uploads,
    }))
}

/// Every user's usage, cut at a bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUsages {
    /// Users in id order.
    pub users: Vec<(UserId, UserUsage)>,
    /// Whether more users are registered than returned.
    pub truncated: bool,
}

fn usages(db: &Database, max: usize) -> Result<UserUsages, StoreError> {
    let ids: Vec<UserId> = {
        let txn = db.begin_read()?;
        let users = txn.open_table(USERS)?;
        let mut ids = Vec::new();
        for entry in users.iter()?.take(max.saturating_add(1)) {
            let (user, _) = entry?;
            ids.push(UserId::from_bytes(*user.value()));
        }
        ids
    };
    let truncated = ids.len() > max;
    let mut out = UserUsages {
        users: Vec::with_capacity(ids.len().min(max)),
        truncated,
    };
    for user in ids.into_iter().take(max) {
        // A user removed between the two reads is left out.
        if let Some(usage) = usage(db, &user)? {
            out.users.push((user, usage));
        }
    }
    Ok(out)
}

/// What suspending or resuming found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// Changed; the user's devices (whose sessions must end when suspended).
    Changed(Vec<DeviceId>),
    /// It already was so.
    Unchanged,
    /// No such user here.
    UnknownUser,
    /// The user's home is another relay now.
    NotHome,
}

impl Tables<'_> {
    /// Whether the operator suspended `user`.
    pub fn is_suspended(&self, user: &UserId) -> Result<bool, StoreError> {
        Ok(self.suspended.get(user.as_bytes())?.is_some())
    }

    fn set_suspended(
        &mut self,
        user: &UserId,
        suspended: bool,
    ) -> Result<SuspendOutcome, StoreError> {
        let Some(record) = self.user(user)? else {
            return Ok(SuspendOutcome::UnknownUser);
        };
        if !record.is_home(&self.config.self_peer) {
            return Ok(SuspendOutcome::NotHome);
        }
        let changed = if suspended {
            self.suspended
                .insert(user.as_bytes(), self.now_ms)?
                .is_none()
        } else {
            self.suspended.remove(user.as_bytes())?.is_some()
        };
        if !changed {
            return Ok(SuspendOutcome::Unchanged);
        }
        Ok(SuspendOutcome::Changed(self.devices_of(user)?))
    }
}

impl Store {
    /// Counts over the whole store (one read transaction; the blocking pool).
    pub async fn totals(&self) -> Result<StoreTotals, StoreError> {
        self.read(totals).await
    }

    /// What `user` holds here, if registered.
    pub async fn user_usage(&self, user: UserId) -> Result<Option<UserUsage>, StoreError> {
        self.read(move |db| usage(db, &user)).await
    }

    /// The usage of every user, at most `max` of them (in id order).
    pub async fn user_usages(&self, max: usize) -> Result<UserUsages, StoreError> {
        self.read(move |db| usages(db, max)).await
    }

    /// Whether the operator suspended `user`.
    pub async fn is_suspended(&self, user: UserId) -> Result<bool, StoreError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            Ok(txn.open_table(SUSPENDED)?.get(user.as_bytes())?.is_some())
        })
        .await
    }

    /// Suspends (`true`) or resumes a local user; persisted in their record.
    pub async fn set_suspended(
        &self,
        user: UserId,
        suspended: bool,
    ) -> Result<SuspendOutcome, StoreError> {
        self.write(1, move |t| t.set_suspended(&user, suspended))
            .await
    }
}
