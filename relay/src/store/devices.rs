//! Signed device lists of users homed here, in the `device_lists` table.

use redb::{Database, ReadableDatabase, ReadableTable};
use tidings_protocol::{DeviceListError, SignedDeviceList, UserId};

use tidings_protocol::store::StoreError;

use super::{
    tables::DEVICE_LISTS,
    txn::{Tables, corrupt},
};

/// What became of a device list handed to the store (it was verified before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceListOutcome {
    /// Stored durably; it is the held list now.
    Stored,
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
        let held = self
            .device_lists
            .get(user.as_bytes())?
            .map(|bytes| decode(bytes.value()))
            .transpose()?;
        if let Some(held) = held {
            match list.check_successor(&held) {
                Ok(()) => {}
                Err(DeviceListError::Stale { held, .. }) => {
                    return Ok(DeviceListOutcome::Stale { held });
                }
                Err(error) => return Ok(DeviceListOutcome::Refused(error)),
            }
        }
        self.device_lists
            .insert(user.as_bytes(), list.encode().as_slice())?;
        Ok(DeviceListOutcome::Stored)
    }
}
