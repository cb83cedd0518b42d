//! Verified device lists of users (ours too): which devices of an account to encrypt to and
//! accept envelopes from. A list is kept only after it verifies against its user, and is
//! replaced only by a newer one.

use super::at_rest::WriteTxn;
use redb::ReadableTable;
use tidings_protocol::{DeviceId, DeviceListError, SignedDeviceList, UserId};

use super::{ClientStore, StoreError, tables::DEVICE_LISTS};

/// What taking a fetched list changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUpdate {
    /// The list now held.
    pub list: SignedDeviceList,
    /// Devices the held list named that the new one does not.
    pub removed: Vec<DeviceId>,
    /// Devices the new list names that the held one did not (all of them for a first list).
    pub added: Vec<DeviceId>,
}

/// The list held for `user` inside a write transaction.
pub(super) fn held(
    txn: &WriteTxn<'_>,
    user: &UserId,
) -> Result<Option<SignedDeviceList>, StoreError> {
    match txn.open_table(DEVICE_LISTS)?.get(user.as_bytes())? {
        Some(bytes) => SignedDeviceList::decode(bytes.value())
            .map(Some)
            .map_err(|error| StoreError::corrupt("device_lists", error)),
        None => Ok(None),
    }
}

/// The devices of `user` on the held list (empty if none is held).
pub(super) fn listed_devices(
    txn: &WriteTxn<'_>,
    user: &UserId,
) -> Result<Vec<DeviceId>, StoreError> {
    Ok(held(txn, user)?
        .map(|list| list.list.devices.iter().map(|entry| entry.device).collect())
        .unwrap_or_default())
}

impl ClientStore {
    /// The verified device list held for `user`, if any.
    pub fn device_list(&self, user: &UserId) -> Result<Option<SignedDeviceList>, StoreError> {
        self.read(
            |txn| match txn.open_table(DEVICE_LISTS)?.get(user.as_bytes())? {
                Some(bytes) => SignedDeviceList::decode(bytes.value())
                    .map(Some)
                    .map_err(|error| StoreError::corrupt("device_lists", error)),
                None => Ok(None),
            },
        )
    }

    /// Takes a list fetched for `user`: kept if it verifies against `user` and is newer than
    /// the held one (the same list again changes nothing); otherwise refused with why, and
    /// the held list stays.
    pub fn accept_device_list(
        &self,
        user: &UserId,
        list: SignedDeviceList,
    ) -> Result<Result<ListUpdate, DeviceListError>, StoreError> {
        self.write(|txn| {
            if list.list.user != *user {
                return Ok(Err(DeviceListError::WrongUser));
            }
            if let Err(error) = list.verify() {
                return Ok(Err(error));
            }
            let before = match held(txn, user)? {
                Some(held) if held.encode() == list.encode() => {
                    return Ok(Ok(ListUpdate {
                        list,
                        removed: Vec::new(),
                        added: Vec::new(),
                    }));
                }
                Some(held) => {
                    if let Err(error) = list.check_successor(&held) {
                        return Ok(Err(error));
                    }
                    Some(held)
                }
                None => None,
            };
            let devices = |list: &SignedDeviceList| -> Vec<DeviceId> {
                list.list.devices.iter().map(|entry| entry.device).collect()
            };
            let (removed, added) = match before {
                Some(held) => (
                    devices(&held)
                        .into_iter()
                        .filter(|device| !list.contains(device))
                        .collect(),
                    devices(&list)
                        .into_iter()
                        .filter(|device| !held.contains(device))
                        .collect(),
                ),
                None => (Vec::new(), devices(&list)),
            };
            txn.open_table(DEVICE_LISTS)?
                .insert(user.as_bytes(), list.encode().as_slice())?;
            Ok(Ok(ListUpdate {
                list,
                removed,
                added,
            }))
        })
    }
}
