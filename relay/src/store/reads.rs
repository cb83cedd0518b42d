//! Read-only queries, run on the blocking pool.

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};
use tidings_protocol::{
    Address, DeviceCert, DeviceId, EnvelopeId, GroupId, UserId, codec, group::SignedDescriptor,
};

use tidings_protocol::store::StoreError;

use super::tables::{
    self, BLOBS, CURSORS, Cursor, DEVICE_RECORDS, DEVICES, DeviceRecord, GROUP_HEADS,
    GROUP_VERSIONS, MAILBOX, ONE_TIME_KEYS, OUTBOX_BODY, OUTBOX_META, OutboxMeta, USERS,
    UserRecord,
};
use super::txn::MAX_DEVICE_RECORD;

pub fn device_user(db: &Database, device: &DeviceId) -> Result<Option<UserId>, StoreError> {
    let txn = db.begin_read()?;
    let devices = txn.open_table(DEVICES)?;
    Ok(devices
        .get(device.as_bytes())?
        .map(|user| UserId::from_bytes(*user.value())))
}

pub fn cursor(db: &Database, device: &DeviceId) -> Result<Cursor, StoreError> {
    let txn = db.begin_read()?;
    let cursors = txn.open_table(CURSORS)?;
    Ok(cursors
        .get(device.as_bytes())?
        .map(|bytes| Cursor::from_bytes(bytes.value()))
        .unwrap_or_default())
}

pub fn mailbox_range(
    db: &Database,
    device: &DeviceId,
    from: u64,
    max_items: usize,
    max_bytes: usize,
) -> Result<Vec<(u64, Bytes)>, StoreError> {
    let txn = db.begin_read()?;
    let mailbox = txn.open_table(MAILBOX)?;
    let blobs = txn.open_table(BLOBS)?;
    let start = tables::mailbox_key(device, from);
    let end = tables::mailbox_key(device, u64::MAX);
    let mut out = Vec::new();
    let mut bytes = 0;
    for entry in mailbox.range::<&[u8; 40]>(&start..=&end)? {
        let (key, value) = entry?;
        let seq = tables::mailbox_seq(key.value());
        // Group envelopes are stored once and referenced from each member's mailbox.
        let value = match tables::parse_blob_ref(value.value()) {
            Some(id) => match blobs.get(&id)? {
                Some(blob) => Bytes::copy_from_slice(blob.value()),
                None => {
                    tracing::error!(seq, "mailbox entry points at a missing blob");
                    continue;
                }
            },
            None => Bytes::copy_from_slice(value.value()),
        };
        if !out.is_empty() && (out.len() >= max_items || bytes + value.len() > max_bytes) {
            break;
        }
        bytes += value.len();
        out.push((seq, value));
    }
    Ok(out)
}

pub fn one_time_key_count(db: &Database, device: &DeviceId) -> Result<u32, StoreError> {
    let txn = db.begin_read()?;
    let keys = txn.open_table(ONE_TIME_KEYS)?;
    count_one_time_keys(&keys, device)
}

pub fn count_one_time_keys(
    keys: &impl ReadableTable<&'static [u8; 64], &'static [u8]>,
    device: &DeviceId,
) -> Result<u32, StoreError> {
    let start = tables::one_time_key_key(device, &[0; 32]);
    let end = tables::one_time_key_key(device, &[0xff; 32]);
    let mut count = 0u32;
    for entry in keys.range::<&[u8; 64]>(&start..=&end)? {
        entry?;
        count += 1;
    }
    Ok(count)
}

/// Largest user record read back.
const MAX_USER_RECORD: usize = 16 * 1024;

pub fn outbox_after(
    db: &Database,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, OutboxMeta)>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(OUTBOX_META)?;
    let mut out = Vec::new();
    for entry in table.range(after.saturating_add(1)..)?.take(limit) {
        let (seq, meta) = entry?;
        out.push((seq.value(), OutboxMeta::from_bytes(meta.value())));
    }
    Ok(out)
}

pub fn outbox_bodies(
    db: &Database,
    ids: &[EnvelopeId],
) -> Result<Vec<(EnvelopeId, Bytes)>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(OUTBOX_BODY)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(body) = table.get(id.as_bytes())? {
            out.push((*id, Bytes::copy_from_slice(body.value())));
        }
    }
    Ok(out)
}

pub fn group_version(db: &Database, group: &GroupId) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    let heads = txn.open_table(GROUP_HEADS)?;
    Ok(heads.get(group.as_bytes())?.map(|v| v.value()).unwrap_or(0))
}

pub fn group_versions(
    db: &Database,
    group: &GroupId,
    from: u64,
    limit: usize,
) -> Result<Vec<SignedDescriptor>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(GROUP_VERSIONS)?;
    let start = tables::group_version_key(group, from);
    let end = tables::group_version_key(group, u64::MAX);
    let mut out = Vec::new();
    for entry in table.range::<&[u8; 24]>(&start..=&end)?.take(limit) {
        let (_, bytes) = entry?;
        out.push(
            SignedDescriptor::decode(bytes.value()).map_err(|error| StoreError::Corrupt {
                table: "group_versions",
                reason: error.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// Decodes a `users` value (reached by the fuzz checks through `store::decode_user`).
pub(crate) fn decode_user(bytes: &[u8]) -> Result<UserRecord, StoreError> {
    codec::decode(bytes, MAX_USER_RECORD).map_err(|error| StoreError::Corrupt {
        table: "users",
        reason: error.to_string(),
    })
}

pub fn user(db: &Database, user: &UserId) -> Result<Option<UserRecord>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(USERS)?;
    table
        .get(user.as_bytes())?
        .map(|bytes| decode_user(bytes.value()))
        .transpose()
}

/// Decodes a `device_records` value.
pub(crate) fn decode_device(bytes: &[u8]) -> Result<DeviceRecord, StoreError> {
    codec::decode(bytes, MAX_DEVICE_RECORD).map_err(|error| StoreError::Corrupt {
        table: "device_records",
        reason: error.to_string(),
    })
}

/// The certificates of those of `devices` registered here under the account they name.
pub fn device_certs(db: &Database, devices: &[Address]) -> Result<Vec<DeviceCert>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(DEVICE_RECORDS)?;
    let mut out = Vec::with_capacity(devices.len());
    for address in devices {
        if let Some(bytes) = table.get(address.device.as_bytes())? {
            let cert = decode_device(bytes.value())?.cert;
            if cert.user == address.user {
                out.push(cert);
            }
        }
    }
    Ok(out)
}

/// The record of a registered device.
pub fn device(db: &Database, device: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(DEVICE_RECORDS)?;
    table
        .get(device.as_bytes())?
        .map(|bytes| decode_device(bytes.value()))
        .transpose()
}

/// Every user registered here, with their record.
pub fn users(db: &Database) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(USERS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (user, bytes) = entry?;
        out.push((
            UserId::from_bytes(*user.value()),
            decode_user(bytes.value())?,
        ));
    }
    Ok(out)
}
