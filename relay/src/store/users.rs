//! Registration, Olm keys and home records inside the batch transaction.

use redb::{ReadableTable, ReadableTableMetadata};
use tidings_protocol::{
    Address, DeviceCert, DeviceId, DeviceListError, HomeRecord, IdentityKey, KeyBundle,
    SignedDeviceList, SignedPreKey, codec, limits,
};

use tidings_protocol::store::StoreError;

use super::{
    outcomes::{ClaimOutcome, KeysOutcome, RegisterOutcome, SetHomeOutcome},
    reads::count_one_time_keys,
    tables::{self, DeviceRecord, UserRecord},
    txn::{Tables, corrupt},
};

impl Tables<'_> {
    /// Registers the device `cert` names (verified by the caller) under the account's
    /// device list: `list` (verified, the same user, naming the device) must succeed the held
    /// one and is stored with the device; without it the held list must name the device, or
    /// the account must have no list and no other device yet. Returns the outcome and the
    /// devices a stored list revoked.
    pub fn register(
        &mut self,
        cert: &DeviceCert,
        list: Option<&SignedDeviceList>,
        max_accounts: Option<u64>,
    ) -> Result<(RegisterOutcome, Vec<DeviceId>), StoreError> {
        let refused = |outcome| Ok((outcome, Vec::new()));
        let user = cert.user;
        let owner = self.device_owner(&cert.device)?;
        if owner.is_some_and(|owner| owner != user) {
            return refused(RegisterOutcome::DeviceTaken);
        }
        let held = self.held_device_list(&user)?;
        // The same list again (a retried registration) is no news.
        let list = list.filter(|list| held.as_ref() != Some(*list));
        match (list, &held) {
            (Some(list), _) => {
                let max = self.config.limits.max_devices_per_account;
                if list.list.devices.len() as u64 > max {
                    return refused(RegisterOutcome::DeviceLimit { max });
                }
                if let Some(held) = &held
                    && let Err(error) = list.check_successor(held)
                {
                    return refused(match error {
                        DeviceListError::Stale { held, .. } => RegisterOutcome::StaleList { held },
                        error => RegisterOutcome::ListRefused(error),
                    });
                }
            }
            (None, Some(held)) if !held.contains(&cert.device) => {
                return refused(RegisterOutcome::Revoked);
            }
            (None, Some(_)) => {}
            (None, None) => {
                let others = self.devices_of(&user)?;
                if others.iter().any(|device| *device != cert.device) {
                    return refused(RegisterOutcome::Revoked);
                }
            }
        }
        let existing = self.user(&user)?;
        if existing.is_none()
            && let Some(max) = max_accounts
            && self.users.len()? >= max
        {
            return refused(RegisterOutcome::AccountLimit);
        }
        if existing.is_none() {
            let record = UserRecord {
                registered_at_ms: self.now_ms,
                home: None,
                here: None,
            };
            self.put_user(&user, &record)?;
            self.forget_removal(&user)?;
        }
        let new = owner.is_none();
        if new {
            self.devices
                .insert(cert.device.as_bytes(), user.as_bytes())?;
            self.user_devices
                .insert(&tables::user_device_key(&user, &cert.device), ())?;
            self.put_device_record(&DeviceRecord {
                cert: cert.clone(),
                registered_at_ms: self.now_ms,
                identity: None,
                fallback: None,
                last_seen_ms: None,
            })?;
        }
        let revoked = match list {
            Some(list) => self.keep_device_list(list)?,
            None => Vec::new(),
        };
        let one_time_keys = count_one_time_keys(&self.one_time_keys, &cert.device)?;
        Ok((RegisterOutcome::Registered { new, one_time_keys }, revoked))
    }

    pub(super) fn remove_one_time_keys(&mut self, device: &DeviceId) -> Result<(), StoreError> {
        let start = tables::one_time_key_key(device, &[0; 32]);
        let end = tables::one_time_key_key(device, &[0xff; 32]);
        self.one_time_keys
            .retain_in::<&[u8; 64], _>(&start..=&end, |_, _| false)?;
        Ok(())
    }

    pub fn upload_keys(
        &mut self,
        device: &DeviceId,
        identity: Option<&IdentityKey>,
        one_time_keys: &[SignedPreKey],
        fallback: Option<&SignedPreKey>,
    ) -> Result<KeysOutcome, StoreError> {
        let Some(mut record) = self.device_record(device)? else {
            return Ok(KeysOutcome::NotRegistered);
        };
        if identity.is_some() || fallback.is_some() {
            if let Some(identity) = identity {
                record.identity = Some(identity.clone());
            }
            if let Some(fallback) = fallback {
                record.fallback = Some(fallback.clone());
            }
            self.put_device_record(&record)?;
        }
        let mut held = count_one_time_keys(&self.one_time_keys, device)?;
        for key in one_time_keys {
            if held as usize >= limits::MAX_STORED_ONE_TIME_KEYS {
                break;
            }
            let slot = tables::one_time_key_key(device, &key.curve25519);
            if self
                .one_time_keys
                .insert(&slot, codec::encode(key).as_slice())?
                .is_none()
            {
                held += 1;
            }
        }
        Ok(KeysOutcome::Stored {
            one_time_keys: held,
        })
    }

    pub fn claim(&mut self, address: &Address) -> Result<ClaimOutcome, StoreError> {
        if !self.is_local(&address.user)? {
            return Ok(ClaimOutcome::UnknownUser);
        }
        let record = match self.device_record(&address.device)? {
            Some(record) if record.cert.user == address.user => record,
            _ => return Ok(ClaimOutcome::UnknownDevice),
        };
        let Some(identity) = record.identity.clone() else {
            return Ok(ClaimOutcome::NoKeys);
        };
        let device = record.cert.device;
        let start = tables::one_time_key_key(&device, &[0; 32]);
        let end = tables::one_time_key_key(&device, &[0xff; 32]);
        let first = match self.one_time_keys.range::<&[u8; 64]>(&start..=&end)?.next() {
            Some(entry) => {
                let (key, value) = entry?;
                Some((*key.value(), value.value().to_vec()))
            }
            None => None,
        };
        let prekey = match first {
            Some((slot, bytes)) => {
                self.one_time_keys.remove(&slot)?;
                codec::decode::<SignedPreKey>(&bytes, 1024)
                    .map_err(|error| corrupt("one_time_keys", error))?
            }
            None => match record.fallback.clone() {
                Some(fallback) => fallback,
                None => return Ok(ClaimOutcome::NoKeys),
            },
        };
        Ok(ClaimOutcome::Bundle(Box::new(KeyBundle {
            cert: record.cert,
            identity,
            prekey,
        })))
    }

    /// Records a verified home record of a registered user; its sequence number must grow.
    pub fn set_home(&mut self, home: &HomeRecord) -> Result<SetHomeOutcome, StoreError> {
        let Some(mut record) = self.user(&home.user)? else {
            return Ok(SetHomeOutcome::NotRegistered);
        };
        if let Some(known) = &record.home
            && home.supersedes(known).is_err()
        {
            return Ok(SetHomeOutcome::Stale { known: known.seq });
        }
        let moved_away = home.relay != self.config.self_peer;
        if !moved_away {
            record.here = Some(home.clone());
        }
        record.home = Some(home.clone());
        self.put_user(&home.user, &record)?;
        Ok(SetHomeOutcome::Stored { moved_away })
    }
}
