//! Signed device lists of users homed here (the `device_lists` table), and revoking the
//! devices a newer list drops: record, keys, mailbox and cursor go in the list's commit.

use redb::{Database, ReadableDatabase, ReadableTable};
use tidings_protocol::{DeviceId, DeviceListError, SignedDeviceList, UserId, codec};

use tidings_protocol::store::StoreError;

use super::{
    tables::{self, DEVICE_LISTS, DEVICE_RECORDS, DeviceRecord, USER_DEVICES, USERS},
    txn::{MAX_DEVICE_RECORD, Tables, corrupt},
};

/// What became of a device list handed to the store (it was verified before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceListOutcome {
    /// Stored durably; it is the held list now. The registered devices it drops were
    /// revoked in the same commit.
    Stored {
        /// The devices revoked.
        revoked: Vec<DeviceId>,
    },
    /// Its version is not above the held list's (a replay or a rollback).
    Stale {
        /// The version of the held list.
        held: u64,
    },
    /// It names more devices than `limits.max_devices_per_account`.
    OverLimit {
        /// The configured cap.
        max: u64,
    },
    /// Its user is not registered here or is homed at another relay.
    NotHome,
    /// It may not follow the held list for another reason than its version.
    Refused(DeviceListError),
}

/// Decodes a `device_lists` value (written by [`Tables::publish_device_list`]).
fn decode(bytes: &[u8]) -> Result<SignedDeviceList, StoreError> {
    SignedDeviceList::decode(bytes).map_err(|error| corrupt("device_lists", error))
}

/// The registered devices of `user` here, with their records, in id order.
pub fn registered(db: &Database, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError> {
    let txn = db.begin_read()?;
    let index = txn.open_table(USER_DEVICES)?;
    let records = txn.open_table(DEVICE_RECORDS)?;
    let start = tables::user_device_key(user, &DeviceId::from_bytes([0; 32]));
    let end = tables::user_device_key(user, &DeviceId::from_bytes([0xff; 32]));
    let mut out = Vec::new();
    for entry in index.range::<&[u8; 64]>(&start..=&end)? {
        let (key, _) = entry?;
        let device = tables::device_of_key(key.value());
        if let Some(bytes) = records.get(device.as_bytes())? {
            out.push(
                codec::decode(bytes.value(), MAX_DEVICE_RECORD)
                    .map_err(|error| corrupt("device_records", error))?,
            );
        }
    }
    Ok(out)
}

/// The list held for `user` if `user` is homed at the relay `self_peer` (one read).
pub fn read_if_home(
    db: &Database,
    user: &UserId,
    self_peer: &str,
) -> Result<Option<SignedDeviceList>, StoreError> {
    let txn = db.begin_read()?;
    let users = txn.open_table(USERS)?;
    let homed_here = match users.get(user.as_bytes())? {
        Some(bytes) => super::reads::decode_user(bytes.value())?.is_home(self_peer),
        None => false,
    };
    if !homed_here {
        return Ok(None);
    }
    let table = txn.open_table(DEVICE_LISTS)?;
    table
        .get(user.as_bytes())?
        .map(|bytes| decode(bytes.value()))
        .transpose()
}

/// The list held for `user`, if any.
pub fn read(db: &Database, user: &UserId) -> Result<Option<SignedDeviceList>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(DEVICE_LISTS)?;
    table
        .get(user.as_bytes())?
        .map(|bytes| decode(bytes.value()))
        .transpose()
}

impl Tables<'_> {
    /// The list held for `user`, if any.
    pub fn held_device_list(&self, user: &UserId) -> Result<Option<SignedDeviceList>, StoreError> {
        self.device_lists
            .get(user.as_bytes())?
            .map(|bytes| decode(bytes.value()))
            .transpose()
    }

    /// Stores `list` (checked to succeed the held one) and revokes every registered device
    /// of its user it does not name; returns those.
    pub fn keep_device_list(
        &mut self,
        list: &SignedDeviceList,
    ) -> Result<Vec<DeviceId>, StoreError> {
        let user = list.list.user;
        self.device_lists
            .insert(user.as_bytes(), list.encode().as_slice())?;
        let mut revoked = Vec::new();
        for device in self.devices_of(&user)? {
            if !list.contains(&device) {
                self.revoke_device(&user, &device)?;
                revoked.push(device);
            }
        }
        Ok(revoked)
    }

    /// Forgets a device of `user`: its registration, record, one-time keys, mailbox entries
    /// (their blob references and origin shares given back), cursor, mailbox size and push
    /// subscription.
    fn revoke_device(&mut self, user: &UserId, device: &DeviceId) -> Result<(), StoreError> {
        self.devices.remove(device.as_bytes())?;
        self.device_records.remove(device.as_bytes())?;
        self.user_devices
            .remove(&tables::user_device_key(user, device))?;
        self.remove_one_time_keys(device)?;
        let head = self.cursor(device)?.head;
        self.ack(device, head)?;
        self.dirty_cursors.remove(device);
        self.dirty_bytes.remove(device);
        self.cursors.remove(device.as_bytes())?;
        self.mailbox_bytes.remove(device.as_bytes())?;
        self.push_subscriptions.remove(device.as_bytes())?;
        tracing::info!(%user, %device, "device revoked");
        Ok(())
    }

    /// Records when a device's last subscribed session ended.
    pub fn device_seen(&mut self, device: &DeviceId, at_ms: u64) -> Result<(), StoreError> {
        if let Some(mut record) = self.device_record(device)? {
            record.last_seen_ms = Some(at_ms);
            self.put_device_record(&record)?;
        }
        Ok(())
    }

    /// Keeps `list` (verified by the caller) as its user's list if the user is homed here,
    /// it is under the cap, and it succeeds the held one.
    pub fn publish_device_list(
        &mut self,
        list: &SignedDeviceList,
    ) -> Result<DeviceListOutcome, StoreError> {
        let user = list.list.user;
        match self.user(&user)? {
            Some(record) if record.is_home(&self.config.self_peer) => {}
            _ => return Ok(DeviceListOutcome::NotHome),
        }
        let max = self.config.limits.max_devices_per_account;
        if list.list.devices.len() as u64 > max {
            return Ok(DeviceListOutcome::OverLimit { max });
        }
        if let Some(held) = self.held_device_list(&user)? {
            match list.check_successor(&held) {
                Ok(()) => {}
                Err(DeviceListError::Stale { held, .. }) => {
                    return Ok(DeviceListOutcome::Stale { held });
                }
                Err(error) => return Ok(DeviceListOutcome::Refused(error)),
            }
        }
        let revoked = self.keep_device_list(list)?;
        Ok(DeviceListOutcome::Stored { revoked })
    }
}
