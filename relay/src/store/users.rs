//! Registration, Olm keys and home records inside the batch transaction.

use redb::{ReadableTable, ReadableTableMetadata};
use tidings_protocol::{
    Address, DeviceCert, DeviceId, HomeRecord, IdentityKey, KeyBundle, SignedPreKey, UserId, codec,
    limits,
};

use tidings_protocol::store::StoreError;

use super::{
    outcomes::{ClaimOutcome, KeysOutcome, RegisterOutcome, SetHomeOutcome},
    reads::count_one_time_keys,
    tables::{self, UserRecord},
    txn::{Tables, corrupt},
};

impl Tables<'_> {
    pub fn register(
        &mut self,
        cert: &DeviceCert,
        max_accounts: Option<u64>,
    ) -> Result<RegisterOutcome, StoreError> {
        if let Some(owner) = self.devices.get(cert.device.as_bytes())? {
            let owner = UserId::from_bytes(*owner.value());
            if owner != cert.user {
                return Ok(RegisterOutcome::DeviceTaken);
            }
            return Ok(RegisterOutcome::Registered {
                new: false,
                one_time_keys: count_one_time_keys(&self.one_time_keys, &cert.device)?,
            });
        }
        let existing = self.user(&cert.user)?;
        if existing.is_none()
            && let Some(max) = max_accounts
            && self.users.len()? >= max
        {
            return Ok(RegisterOutcome::AccountLimit);
        }
        if let Some(existing) = &existing {
            // One device per account: a newer certificate from the account replaces the old
            // device (the account key outranks any device); an older one is refused.
            if existing.cert.issued_at_ms >= cert.issued_at_ms {
                return Ok(RegisterOutcome::DeviceLimit);
            }
            self.devices.remove(existing.cert.device.as_bytes())?;
            self.remove_one_time_keys(&existing.cert.device)?;
        }
        self.devices
            .insert(cert.device.as_bytes(), cert.user.as_bytes())?;
        let (home, here) = existing
            .map(|record| (record.home, record.here))
            .unwrap_or_default();
        let record = UserRecord {
            cert: cert.clone(),
            registered_at_ms: self.now_ms,
            identity: None,
            fallback: None,
            home,
            here,
        };
        self.put_user(&cert.user, &record)?;
        Ok(RegisterOutcome::Registered {
            new: true,
            one_time_keys: 0,
        })
    }

    fn remove_one_time_keys(&mut self, device: &DeviceId) -> Result<(), StoreError> {
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
        let Some(user) = self
            .devices
            .get(device.as_bytes())?
            .map(|user| UserId::from_bytes(*user.value()))
        else {
            return Ok(KeysOutcome::NotRegistered);
        };
        let Some(mut record) = self.user(&user)? else {
            return Ok(KeysOutcome::NotRegistered);
        };
        if identity.is_some() || fallback.is_some() {
            if let Some(identity) = identity {
                record.identity = Some(identity.clone());
            }
            if let Some(fallback) = fallback {
                record.fallback = Some(fallback.clone());
            }
            self.put_user(&user, &record)?;
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
        let Some(record) = self.user(&address.user)? else {
            return Ok(ClaimOutcome::UnknownUser);
        };
        if !record.is_home(&self.config.self_peer) {
            return Ok(ClaimOutcome::UnknownUser);
        }
        if record.cert.device != address.device {
            return Ok(ClaimOutcome::UnknownDevice);
        }
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
