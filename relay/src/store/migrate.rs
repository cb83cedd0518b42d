//! Schema 1 -> 2 of `relay.redb`: one device per account becomes accounts of devices.
//!
//! Schema 1 kept the single device's certificate and Olm keys in the user record and keyed
//! the mailbox, cursor, mailbox size and mailbox origins by user id. Schema 2 keeps a record
//! per device, an index user -> devices, and keys those tables by device id (32 bytes like a
//! user id, so the keys keep their layout). Every user's data becomes "the user's one
//! device"; nothing else changes.

use redb::{ReadableTable, WriteTransaction};
use serde::Deserialize;
use tidings_protocol::{
    DeviceCert, DeviceId, HomeRecord, IdentityKey, SignedPreKey, UserId, codec, store::StoreError,
};

use super::{
    tables::{
        self, CURSORS, DEVICE_RECORDS, DeviceRecord, MAILBOX, MAILBOX_BYTES, MAILBOX_ORIGINS,
        USER_DEVICES, USERS, UserRecord,
    },
    txn::corrupt,
};

/// Largest schema-1 user record read back.
const MAX_V1_USER_RECORD: usize = 16 * 1024;

/// A user record as schema 1 wrote it.
#[derive(Deserialize)]
struct UserRecordV1 {
    cert: DeviceCert,
    registered_at_ms: u64,
    identity: Option<IdentityKey>,
    fallback: Option<SignedPreKey>,
    #[serde(default)]
    home: Option<HomeRecord>,
    #[serde(default)]
    here: Option<HomeRecord>,
}

/// Migrates schema 1 to schema 2 inside the opening write transaction.
pub fn per_device(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut moved = Vec::new();
    {
        let mut users = txn.open_table(USERS)?;
        let mut records = txn.open_table(DEVICE_RECORDS)?;
        let mut index = txn.open_table(USER_DEVICES)?;
        let mut old = Vec::new();
        for entry in users.iter()? {
            let (user, bytes) = entry?;
            let record: UserRecordV1 = codec::decode(bytes.value(), MAX_V1_USER_RECORD)
                .map_err(|error| corrupt("users", error))?;
            old.push((UserId::from_bytes(*user.value()), record));
        }
        for (user, old) in old {
            let device = old.cert.device;
            let record = DeviceRecord {
                cert: old.cert,
                registered_at_ms: old.registered_at_ms,
                identity: old.identity,
                fallback: old.fallback,
                last_seen_ms: None,
            };
            records.insert(device.as_bytes(), codec::encode(&record).as_slice())?;
            index.insert(&tables::user_device_key(&user, &device), ())?;
            let user_record = UserRecord {
                registered_at_ms: old.registered_at_ms,
                home: old.home,
                here: old.here,
            };
            users.insert(user.as_bytes(), codec::encode(&user_record).as_slice())?;
            moved.push((user, device));
        }
    }
    for (user, device) in &moved {
        rekey_cursor(txn, user, device)?;
        rekey_size(txn, user, device)?;
        rekey_mailbox(txn, user, device)?;
        rekey_origins(txn, user, device)?;
    }
    tracing::info!(
        users = moved.len(),
        "relay store: each account's device now has its own mailbox"
    );
    Ok(())
}

/// The schema-1 key of `user`'s mailbox entry `seq` (the same layout, keyed by user).
fn user_key(user: &UserId, seq: u64) -> [u8; 40] {
    tables::mailbox_key(&DeviceId::from_bytes(*user.as_bytes()), seq)
}

fn rekey_cursor(
    txn: &WriteTransaction,
    user: &UserId,
    device: &DeviceId,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(CURSORS)?;
    let cursor = table.remove(user.as_bytes())?.map(|value| *value.value());
    if let Some(cursor) = cursor {
        table.insert(device.as_bytes(), &cursor)?;
    }
    Ok(())
}

fn rekey_size(txn: &WriteTransaction, user: &UserId, device: &DeviceId) -> Result<(), StoreError> {
    let mut table = txn.open_table(MAILBOX_BYTES)?;
    let size = table.remove(user.as_bytes())?.map(|value| value.value());
    if let Some(size) = size {
        table.insert(device.as_bytes(), size)?;
    }
    Ok(())
}

fn rekey_mailbox(
    txn: &WriteTransaction,
    user: &UserId,
    device: &DeviceId,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(MAILBOX)?;
    let mut entries = Vec::new();
    table.retain_in::<&[u8; 40], _>(
        &user_key(user, 0)..=&user_key(user, u64::MAX),
        |key, value| {
            entries.push((tables::mailbox_seq(key), value.to_vec()));
            false
        },
    )?;
    for (seq, bytes) in entries {
        table.insert(&tables::mailbox_key(device, seq), bytes.as_slice())?;
    }
    Ok(())
}

fn rekey_origins(
    txn: &WriteTransaction,
    user: &UserId,
    device: &DeviceId,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(MAILBOX_ORIGINS)?;
    let mut entries = Vec::new();
    table.retain_in::<&[u8; 40], _>(
        &user_key(user, 0)..=&user_key(user, u64::MAX),
        |key, tag| {
            entries.push((tables::mailbox_seq(key), *tag));
            false
        },
    )?;
    for (seq, tag) in entries {
        table.insert(&tables::mailbox_key(device, seq), &tag)?;
    }
    Ok(())
}
