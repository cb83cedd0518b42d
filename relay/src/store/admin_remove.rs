//! Removing a user for the operator: every row the relay holds for them, in one commit.

use redb::ReadableTable;
use tidings_protocol::{
    BlobId, DeviceId, UserId, home::HOME_RECORD_LIFETIME_MS, store::StoreError,
};

use super::{Store, media::decode_media_blob, tables, txn::Tables};

/// What a removal deleted, and what the caller deletes from disk after the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// The user's devices (their sessions and push subscriptions end).
    pub devices: Vec<DeviceId>,
    /// Mailbox entries deleted.
    pub mailbox_entries: u64,
    /// Uploads in progress deleted (their partial files go next).
    pub uploads: Vec<BlobId>,
    /// Whole blobs the user uploaded that nothing references any more: collectable now.
    pub orphaned_blobs: Vec<BlobId>,
}

/// What removing a user found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Removed.
    Removed(Removal),
    /// No such user here.
    UnknownUser,
    /// The user's home is another relay now (their mail is being handed on).
    NotHome,
}

impl Tables<'_> {
    fn remove_user(&mut self, user: &UserId) -> Result<RemoveOutcome, StoreError> {
        let Some(record) = self.user(user)? else {
            return Ok(RemoveOutcome::UnknownUser);
        };
        if !record.is_home(&self.config.self_peer) {
            return Ok(RemoveOutcome::NotHome);
        }
        let mut removal = Removal {
            devices: self.devices_of(user)?,
            ..Removal::default()
        };
        for device in &removal.devices {
            self.remove_device_rows(user, device, &mut removal.mailbox_entries)?;
        }
        let picture = match self.profiles.remove(user.as_bytes())? {
            Some(profile) => super::profiles::decode(profile.value())?.picture,
            None => None,
        };
        if let Some(picture) = picture {
            self.release_media(&[picture.id])?;
        }
        self.presence.remove(user.as_bytes())?;
        self.device_lists.remove(user.as_bytes())?;
        self.suspended.remove(user.as_bytes())?;
        removal.uploads = self.uploads_of(user)?;
        for id in &removal.uploads {
            self.drop_media_upload(user, id)?;
        }
        removal.orphaned_blobs = self.release_uploaded_blobs(user)?;
        self.media_bytes.remove(user.as_bytes())?;
        self.users.remove(user.as_bytes())?;
        // Until the record that named this relay expires, other relays may still route the
        // user's mail here: it is answered `unknown_recipient`, not held.
        let until = record
            .here
            .map_or(
                self.now_ms.saturating_add(HOME_RECORD_LIFETIME_MS),
                |here| here.expires_at_ms,
            )
            .max(self.now_ms);
        self.removed.insert(user.as_bytes(), until)?;
        Ok(RemoveOutcome::Removed(removal))
    }

    /// Deletes one device's mailbox (through `ack`, which gives back every reference its
    /// entries hold), its keys, registration and push subscription.
    fn remove_device_rows(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        entries: &mut u64,
    ) -> Result<(), StoreError> {
        let cursor = self.cursor(device)?;
        *entries += cursor.pending();
        self.ack(device, cursor.head)?;
        self.dirty_cursors.remove(device);
        self.cursors.remove(device.as_bytes())?;
        // Zero is written back as "no row" at the end of the batch.
        self.dirty_bytes.insert(*device, 0);
        self.remove_one_time_keys(device)?;
        self.devices.remove(device.as_bytes())?;
        self.user_devices
            .remove(&tables::user_device_key(user, device))?;
        self.device_records.remove(device.as_bytes())?;
        self.push_subscriptions.remove(device.as_bytes())?;
        Ok(())
    }

    fn uploads_of(&self, user: &UserId) -> Result<Vec<BlobId>, StoreError> {
        let start = tables::media_upload_key(user, &BlobId::from_bytes([0; 32]));
        let end = tables::media_upload_key(user, &BlobId::from_bytes([0xff; 32]));
        let mut ids = Vec::new();
        for entry in self.media_uploads.range::<&[u8; 64]>(&start..=&end)? {
            let (key, _) = entry?;
            ids.push(tables::media_upload_of_key(key.value()).1);
        }
        Ok(ids)
    }

    /// The whole blobs `user` uploaded that nothing stored names now, made collectable at
    /// once (their upload grace was for a message the user will never send).
    fn release_uploaded_blobs(&mut self, user: &UserId) -> Result<Vec<BlobId>, StoreError> {
        let mut theirs = Vec::new();
        for entry in self.media_blobs.iter()? {
            let (id, bytes) = entry?;
            let blob = decode_media_blob(bytes.value())?;
            if blob.uploaded_by == *user {
                theirs.push(BlobId::from_bytes(*id.value()));
            }
        }
        let mut orphaned = Vec::new();
        for id in theirs {
            if self.media_refs(&id)? > 0 {
                continue;
            }
            if let Some(mut blob) = self.media_blob(&id)? {
                blob.grace_until_ms = self.now_ms;
                blob.unreferenced_since_ms = self.now_ms;
                self.put_media_blob(&id, &blob)?;
                orphaned.push(id);
            }
        }
        Ok(orphaned)
    }

    /// Whether envelopes for `user` are answered `unknown_recipient` because the operator
    /// removed them (and the record naming this relay has not expired yet).
    pub fn was_removed(&self, user: &UserId) -> Result<bool, StoreError> {
        Ok(self
            .removed
            .get(user.as_bytes())?
            .is_some_and(|until| until.value() > self.now_ms))
    }

    /// A new registration of a removed user starts afresh.
    pub fn forget_removal(&mut self, user: &UserId) -> Result<(), StoreError> {
        self.removed.remove(user.as_bytes())?;
        Ok(())
    }
}

impl Store {
    /// Deletes `user` and everything held for them (see [`Removal`]).
    pub async fn remove_user(&self, user: UserId) -> Result<RemoveOutcome, StoreError> {
        self.write(1, move |t| t.remove_user(&user)).await
    }

    /// Whether the operator removed `user` here and the record that named this relay has
    /// not expired yet.
    pub async fn was_removed(&self, user: UserId) -> Result<bool, StoreError> {
        self.read(move |db| {
            let txn = redb::ReadableDatabase::begin_read(db)?;
            let removed = txn.open_table(tables::REMOVED)?;
            Ok(removed
                .get(user.as_bytes())?
                .is_some_and(|until| until.value() > tidings_protocol::now_ms()))
        })
        .await
    }
}
