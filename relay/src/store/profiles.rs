//! Sealed profiles of local users (the `profiles` table): the newest version each user's
//! devices stored, its picture's blob counted as a media reference while it is held.

use redb::{Database, ReadableDatabase, ReadableTable};
use tidings_protocol::{DeviceId, UserId, profile::SealedProfile};

use tidings_protocol::store::StoreError;

use super::{
    tables::PROFILES,
    txn::{Tables, corrupt},
};

/// What became of a [`super::Store::put_profile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutProfileOutcome {
    /// Stored, replacing any older version.
    Stored,
    /// The held version is as new or newer; nothing changed.
    Stale {
        /// The version held.
        held: u64,
    },
    /// The device is not registered under the profile's user here.
    NotRegistered,
}

/// Decodes a `profiles` value.
pub(crate) fn decode(bytes: &[u8]) -> Result<SealedProfile, StoreError> {
    SealedProfile::decode(bytes).map_err(|error| corrupt("profiles", error))
}

/// The sealed profile held for `user`, if any.
pub fn read(db: &Database, user: &UserId) -> Result<Option<SealedProfile>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(PROFILES)?;
    table
        .get(user.as_bytes())?
        .map(|bytes| decode(bytes.value()))
        .transpose()
}

impl Tables<'_> {
    /// Keeps `profile` (sent by `device`) if the device is its user's and the version is
    /// higher than the one held; the new picture's blob gains a reference, the old one's
    /// loses it.
    pub fn put_profile(
        &mut self,
        device: &DeviceId,
        profile: &SealedProfile,
    ) -> Result<PutProfileOutcome, StoreError> {
        if self.device_owner(device)? != Some(profile.user) {
            return Ok(PutProfileOutcome::NotRegistered);
        }
        let held = self
            .profiles
            .get(profile.user.as_bytes())?
            .map(|bytes| decode(bytes.value()))
            .transpose()?;
        if let Some(held) = &held
            && held.version >= profile.version
        {
            return Ok(PutProfileOutcome::Stale { held: held.version });
        }
        self.profiles
            .insert(profile.user.as_bytes(), profile.encode().as_slice())?;
        if let Some(picture) = &profile.picture {
            self.reference_media(&[picture.id])?;
        }
        if let Some(old) = held.and_then(|held| held.picture) {
            self.release_media(&[old.id])?;
        }
        Ok(PutProfileOutcome::Stored)
    }
}
