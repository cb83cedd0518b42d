//! Push subscriptions of local devices (the `push_subscriptions` table): set, cleared,
//! dropped when the push service says they are gone, and with the device when it is revoked.

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use tidings_protocol::{DeviceId, UserId, codec, push::PushSubscription};

use tidings_protocol::store::StoreError;

use super::{
    tables::PUSH_SUBSCRIPTIONS,
    txn::{Tables, corrupt},
};

/// Largest stored push record (an endpoint at its bound plus keys and framing).
const MAX_PUSH_RECORD: usize = 4 * 1024;

/// What the relay keeps for one device's push subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    /// The device's account.
    pub user: UserId,
    /// Where and how to push.
    pub subscription: PushSubscription,
    /// When the device set it (milliseconds since the epoch).
    pub set_at_ms: u64,
}

/// What became of a [`super::Store::set_push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetPushOutcome {
    /// Stored (or cleared).
    Done,
    /// The device is not registered under that user here (revoked meanwhile).
    NotRegistered,
}

fn decode(bytes: &[u8]) -> Result<PushRecord, StoreError> {
    codec::decode(bytes, MAX_PUSH_RECORD).map_err(|error| corrupt("push_subscriptions", error))
}

/// The subscription of `device`, if it has one.
pub fn read(db: &Database, device: &DeviceId) -> Result<Option<PushRecord>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(PUSH_SUBSCRIPTIONS)?;
    table
        .get(device.as_bytes())?
        .map(|bytes| decode(bytes.value()))
        .transpose()
}

/// Every stored subscription (at most one per registered device), for start-up.
pub fn read_all(db: &Database) -> Result<Vec<(DeviceId, PushRecord)>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(PUSH_SUBSCRIPTIONS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (device, bytes) = entry?;
        out.push((
            DeviceId::from_bytes(*device.value()),
            decode(bytes.value())?,
        ));
    }
    Ok(out)
}

impl Tables<'_> {
    /// Stores (`Some`) or clears (`None`) the subscription of a device registered to `user`.
    pub fn set_push(
        &mut self,
        device: &DeviceId,
        user: &UserId,
        subscription: Option<&PushSubscription>,
    ) -> Result<SetPushOutcome, StoreError> {
        if self.device_owner(device)? != Some(*user) {
            return Ok(SetPushOutcome::NotRegistered);
        }
        match subscription {
            Some(subscription) => {
                let record = PushRecord {
                    user: *user,
                    subscription: subscription.clone(),
                    set_at_ms: self.now_ms,
                };
                self.push_subscriptions
                    .insert(device.as_bytes(), codec::encode(&record).as_slice())?;
            }
            None => {
                self.push_subscriptions.remove(device.as_bytes())?;
            }
        }
        Ok(SetPushOutcome::Done)
    }

    /// Deletes the subscription of `device` if it still has this `endpoint` (a push service
    /// said it is gone; a newer one the device set meanwhile stays). True if deleted.
    pub fn drop_push(&mut self, device: &DeviceId, endpoint: &str) -> Result<bool, StoreError> {
        let held = self
            .push_subscriptions
            .get(device.as_bytes())?
            .map(|bytes| decode(bytes.value()))
            .transpose()?;
        if held.is_some_and(|record| record.subscription.endpoint == endpoint) {
            self.push_subscriptions.remove(device.as_bytes())?;
            return Ok(true);
        }
        Ok(false)
    }
}
