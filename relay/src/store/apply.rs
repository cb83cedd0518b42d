//! What each write operation does inside the batch's transaction.

use std::collections::HashMap;

use redb::{Database, ReadableTable, Table, WriteTransaction};
use tidings_protocol::{
    DeviceCert, DeviceId, IdentityKey, KeyBundle, SignedPreKey, UserId, codec, limits,
};

use super::{
    ClaimOutcome, KeysOutcome, NewEnvelope, RegisterOutcome, StoreError, StoreLimits, StoreOutcome,
    reads::count_one_time_keys,
    tables::{self, CURSORS, Cursor, DEVICES, MAILBOX, ONE_TIME_KEYS, SeenMark, USERS, UserRecord},
    writer::{OpResult, WriteOp},
};
use crate::mailbox::Publication;

/// Largest user record we expect to read back.
const MAX_USER_RECORD: usize = 8 * 1024;

type Bytes32 = &'static [u8; 32];

/// Creates every fixed table so readers never meet a missing one.
pub fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(USERS)?;
    txn.open_table(DEVICES)?;
    txn.open_table(ONE_TIME_KEYS)?;
    txn.open_table(CURSORS)?;
    txn.open_table(MAILBOX)?;
    txn.commit()?;
    Ok(())
}

/// The tables of one write transaction, opened once per batch.
struct Tables<'txn> {
    users: Table<'txn, Bytes32, &'static [u8]>,
    devices: Table<'txn, Bytes32, Bytes32>,
    one_time_keys: Table<'txn, &'static [u8; 64], &'static [u8]>,
    cursors: Table<'txn, Bytes32, &'static [u8; 16]>,
    mailbox: Table<'txn, &'static [u8; 40], &'static [u8]>,
    seen_now: Table<'txn, &'static [u8; 16], &'static [u8; 16]>,
    seen_before: Table<'txn, &'static [u8; 16], &'static [u8; 16]>,
    /// Cursors changed in this batch, written back once at the end.
    dirty_cursors: HashMap<UserId, Cursor>,
    now_ms: u64,
    limits: StoreLimits,
}

/// Applies every operation of the batch in one transaction and commits it.
pub fn apply_batch(
    db: &Database,
    batch: &[WriteOp],
    limits: StoreLimits,
) -> Result<(Vec<OpResult>, Vec<Publication>), StoreError> {
    let now_ms = tidings_protocol::now_ms();
    let generation = now_ms / (limits.dedupe_window_ms / 2).max(1);
    let txn = db.begin_write()?;
    drop_old_seen_tables(&txn, generation)?;
    let mut results = Vec::with_capacity(batch.len());
    let mut publications = Vec::new();
    {
        let seen_now_name = tables::seen_table(generation);
        let seen_before_name = tables::seen_table(generation.saturating_sub(1));
        let mut t = Tables {
            users: txn.open_table(USERS)?,
            devices: txn.open_table(DEVICES)?,
            one_time_keys: txn.open_table(ONE_TIME_KEYS)?,
            cursors: txn.open_table(CURSORS)?,
            mailbox: txn.open_table(MAILBOX)?,
            seen_now: txn.open_table(redb::TableDefinition::new(&seen_now_name))?,
            seen_before: txn.open_table(redb::TableDefinition::new(&seen_before_name))?,
            dirty_cursors: HashMap::new(),
            now_ms,
            limits,
        };
        for op in batch {
            results.push(match op {
                WriteOp::Register { cert, .. } => OpResult::Register(t.register(cert)?),
                WriteOp::UploadKeys {
                    device,
                    identity,
                    one_time_keys,
                    fallback,
                    ..
                } => OpResult::UploadKeys(t.upload_keys(
                    device,
                    identity.as_ref(),
                    one_time_keys,
                    fallback.as_ref(),
                )?),
                WriteOp::Claim { user, .. } => OpResult::Claim(t.claim(user)?),
                WriteOp::Envelopes { items, .. } => {
                    OpResult::Envelopes(t.store_envelopes(items, &mut publications)?)
                }
                WriteOp::Ack { user, up_to, .. } => {
                    t.ack(user, *up_to)?;
                    OpResult::Ack
                }
            });
        }
        for (user, cursor) in &t.dirty_cursors {
            t.cursors.insert(user.as_bytes(), &cursor.to_bytes())?;
        }
    }
    txn.commit()?;
    Ok((results, publications))
}

/// Deletes dedupe generations older than the previous one.
fn drop_old_seen_tables(txn: &WriteTransaction, generation: u64) -> Result<(), StoreError> {
    let stale: Vec<String> = txn
        .list_tables()?
        .map(|handle| redb::TableHandle::name(&handle).to_string())
        .filter(|name| {
            name.strip_prefix("seen.")
                .and_then(|g| g.parse::<u64>().ok())
                .is_some_and(|g| g + 1 < generation)
        })
        .collect();
    for name in stale {
        let definition: redb::TableDefinition<&[u8; 16], &[u8; 16]> =
            redb::TableDefinition::new(&name);
        txn.delete_table(definition)?;
    }
    Ok(())
}

fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: reason.to_string(),
    }
}

impl Tables<'_> {
    fn user(&self, user: &UserId) -> Result<Option<UserRecord>, StoreError> {
        match self.users.get(user.as_bytes())? {
            Some(bytes) => codec::decode(bytes.value(), MAX_USER_RECORD)
                .map(Some)
                .map_err(|error| corrupt("users", error)),
            None => Ok(None),
        }
    }

    fn put_user(&mut self, user: &UserId, record: &UserRecord) -> Result<(), StoreError> {
        self.users
            .insert(user.as_bytes(), codec::encode(record).as_slice())?;
        Ok(())
    }

    fn cursor(&self, user: &UserId) -> Result<Cursor, StoreError> {
        if let Some(cursor) = self.dirty_cursors.get(user) {
            return Ok(*cursor);
        }
        Ok(self
            .cursors
            .get(user.as_bytes())?
            .map(|bytes| Cursor::from_bytes(bytes.value()))
            .unwrap_or_default())
    }

    fn register(&mut self, cert: &DeviceCert) -> Result<RegisterOutcome, StoreError> {
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
        if let Some(existing) = self.user(&cert.user)? {
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
        let record = UserRecord {
            cert: cert.clone(),
            registered_at_ms: self.now_ms,
            identity: None,
            fallback: None,
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

    fn upload_keys(
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

    fn claim(&mut self, user: &UserId) -> Result<ClaimOutcome, StoreError> {
        let Some(record) = self.user(user)? else {
            return Ok(ClaimOutcome::UnknownUser);
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

    fn store_envelopes(
        &mut self,
        items: &[NewEnvelope],
        publications: &mut Vec<Publication>,
    ) -> Result<Vec<StoreOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            outcomes.push(self.store_envelope(item, publications)?);
        }
        Ok(outcomes)
    }

    fn store_envelope(
        &mut self,
        item: &NewEnvelope,
        publications: &mut Vec<Publication>,
    ) -> Result<StoreOutcome, StoreError> {
        let fingerprint = tables::fingerprint(&item.bytes);
        let id = tables::seen_key(&item.id);
        let seen = match self.seen_now.get(id)? {
            Some(mark) => Some(SeenMark::from_bytes(mark.value())),
            None => self
                .seen_before
                .get(id)?
                .map(|mark| SeenMark::from_bytes(mark.value())),
        };
        if let Some(mark) = seen {
            return Ok(if mark.fingerprint == fingerprint {
                StoreOutcome::Duplicate
            } else {
                StoreOutcome::IdReused
            });
        }
        if !self.dirty_cursors.contains_key(&item.recipient)
            && self.users.get(item.recipient.as_bytes())?.is_none()
        {
            return Ok(StoreOutcome::UnknownRecipient);
        }
        let mut cursor = self.cursor(&item.recipient)?;
        if cursor.pending() >= self.limits.mailbox_max_envelopes {
            return Ok(StoreOutcome::MailboxFull);
        }
        cursor.head += 1;
        let seq = cursor.head;
        self.mailbox.insert(
            &tables::mailbox_key(&item.recipient, seq),
            item.bytes.as_ref(),
        )?;
        let mark = SeenMark {
            fingerprint,
            at_ms: self.now_ms,
        };
        self.seen_now.insert(id, &mark.to_bytes())?;
        self.dirty_cursors.insert(item.recipient, cursor);
        publications.push(Publication {
            user: item.recipient,
            seq,
            bytes: item.bytes.clone(),
        });
        Ok(StoreOutcome::Accepted { seq })
    }

    fn ack(&mut self, user: &UserId, up_to: u64) -> Result<(), StoreError> {
        let mut cursor = self.cursor(user)?;
        let up_to = up_to.min(cursor.head);
        if up_to <= cursor.acked {
            return Ok(());
        }
        let start = tables::mailbox_key(user, cursor.acked + 1);
        let end = tables::mailbox_key(user, up_to);
        self.mailbox
            .retain_in::<&[u8; 40], _>(&start..=&end, |_, _| false)?;
        cursor.acked = up_to;
        self.dirty_cursors.insert(*user, cursor);
        Ok(())
    }
}
