//! Profiles in the local store: our own (key, plaintext, whether the relay has it), the
//! profile keys and profiles of contacts, and which contact got which key version.

use super::at_rest::{ReadTxn, WriteTxn};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tidings_keys::ProfileKey;
use tidings_protocol::{Kind, UserId, content::Payload, profile::Profile};

use super::{
    ClientStore, StoreError, device_lists, outbox,
    tables::{CONTACT_NAMES, META},
};

/// "own" -> CBOR [`OwnProfile`] (new with profiles: created empty on open).
pub const OWN_PROFILE: TableDefinition<&str, &[u8]> = TableDefinition::new("own_profile");
/// user id -> CBOR [`KnownProfile`]: a contact's (or our other devices') profile key and the
/// newest profile opened with it.
pub const PROFILES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("profiles");
/// contact user id -> the version of our profile whose key they were sent.
pub const PROFILE_SHARED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("profile_shared");

const OWN_KEY: &str = "own";
/// META key: the version of our profile whose key our own other devices were sent.
const META_PROFILE_SELF_SHARED: &str = "profile_self_shared";

/// This account's profile as this device knows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnProfile {
    /// The profile key ([`ProfileKey`] bytes).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The newest profile (plaintext).
    pub profile: Profile,
    /// Whether the home relay holds this version (sharing the key waits until it does).
    pub uploaded: bool,
}

impl std::fmt::Debug for OwnProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnProfile")
            .field("profile", &self.profile)
            .field("uploaded", &self.uploaded)
            .finish_non_exhaustive()
    }
}

impl OwnProfile {
    /// The key as the sealing functions take it.
    pub fn profile_key(&self) -> Result<ProfileKey, StoreError> {
        ProfileKey::from_slice(&self.key).map_err(|error| StoreError::corrupt("own_profile", error))
    }
}

/// Another user's profile key and the newest profile opened with it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownProfile {
    /// Their profile key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The profile version the key came with: a held profile older than it is fetched.
    pub key_version: u64,
    /// The newest profile fetched and opened, if any.
    pub profile: Option<Profile>,
}

impl std::fmt::Debug for KnownProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownProfile")
            .field("key_version", &self.key_version)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl KnownProfile {
    /// Whether a newer profile than the one held is out (the key says so).
    pub fn is_due(&self) -> bool {
        self.profile
            .as_ref()
            .is_none_or(|profile| profile.version < self.key_version)
    }
}

fn read_own(txn: &ReadTxn<'_>) -> Result<Option<OwnProfile>, StoreError> {
    match txn.open_table(OWN_PROFILE)?.get(OWN_KEY)? {
        Some(bytes) => txn
            .at_rest
            .open_record("own_profile", OWN_KEY.as_bytes(), bytes.value())
            .map(Some),
        None => Ok(None),
    }
}

fn own_in(txn: &WriteTxn<'_>) -> Result<Option<OwnProfile>, StoreError> {
    match txn.open_table(OWN_PROFILE)?.get(OWN_KEY)? {
        Some(bytes) => txn
            .at_rest
            .open_record("own_profile", OWN_KEY.as_bytes(), bytes.value())
            .map(Some),
        None => Ok(None),
    }
}

fn write_own(txn: &WriteTxn<'_>, own: &OwnProfile) -> Result<(), StoreError> {
    txn.open_table(OWN_PROFILE)?.insert(
        OWN_KEY,
        txn.at_rest
            .seal_record("own_profile", OWN_KEY.as_bytes(), own)?
            .as_slice(),
    )?;
    Ok(())
}

/// A profile key arrived from `peer` (a contact, or another device of ours): kept if it is
/// for a version at least as new as the one held. Keys from strangers are dropped. Returns
/// the version if it is news.
pub(super) fn take_key(
    txn: &WriteTxn<'_>,
    me: UserId,
    peer: UserId,
    key: Vec<u8>,
    version: u64,
) -> Result<Option<u64>, StoreError> {
    let is_contact = txn
        .open_table(CONTACT_NAMES)?
        .get(peer.as_bytes())?
        .is_some();
    if (peer != me && !is_contact) || ProfileKey::from_slice(&key).is_err() {
        tracing::debug!(%peer, "ignoring a profile key from a stranger or of a bad length");
        return Ok(None);
    }
    let mut table = txn.open_table(PROFILES)?;
    let held: Option<KnownProfile> = table
        .get(peer.as_bytes())?
        .map(|bytes| {
            txn.at_rest
                .open_record("profiles", peer.as_bytes(), bytes.value())
        })
        .transpose()?;
    if let Some(held) = &held
        && (held.key_version > version || (held.key_version == version && held.key == key))
    {
        return Ok(None);
    }
    let known = KnownProfile {
        key,
        key_version: version,
        profile: held.and_then(|held| held.profile),
    };
    let sealed = txn
        .at_rest
        .seal_record("profiles", peer.as_bytes(), &known)?;
    table.insert(peer.as_bytes(), sealed.as_slice())?;
    Ok(Some(version))
}

impl ClientStore {
    /// Our own profile, if one was ever set (here or on another device of ours).
    pub fn own_profile(&self) -> Result<Option<OwnProfile>, StoreError> {
        self.read(read_own)
    }

    /// Keeps `own` as our profile.
    pub fn set_own_profile(&self, own: &OwnProfile) -> Result<(), StoreError> {
        self.write(|txn| write_own(txn, own))
    }

    /// Marks our profile as not stored at the relay (our home changed: the new one holds
    /// none yet); the next flush stores it there.
    pub fn own_profile_to_store_again(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            let held = txn
                .open_table(OWN_PROFILE)?
                .get(OWN_KEY)?
                .map(|bytes| bytes.value().to_vec());
            let Some(bytes) = held else {
                return Ok(());
            };
            let mut own: OwnProfile =
                txn.at_rest
                    .open_record("own_profile", OWN_KEY.as_bytes(), &bytes)?;
            own.uploaded = false;
            write_own(txn, &own)
        })
    }

    /// The profile key and newest profile held for `user`.
    pub fn known_profile(&self, user: &UserId) -> Result<Option<KnownProfile>, StoreError> {
        self.read(|txn| {
            txn.open_table(PROFILES)?
                .get(user.as_bytes())?
                .map(|bytes| {
                    txn.at_rest
                        .open_record("profiles", user.as_bytes(), bytes.value())
                })
                .transpose()
        })
    }

    /// Users whose held profile is older than the version their key came with.
    pub fn profiles_due(&self) -> Result<Vec<UserId>, StoreError> {
        self.read(|txn| {
            let mut due = Vec::new();
            for entry in txn.open_table(PROFILES)?.iter()? {
                let (user, bytes) = entry?;
                let known: KnownProfile =
                    txn.at_rest
                        .open_record("profiles", user.value(), bytes.value())?;
                if known.is_due() {
                    due.push(UserId::from_bytes(*user.value()));
                }
            }
            Ok(due)
        })
    }

    /// Keeps `profile` of `user` if it is newer than the held one (opened with the held
    /// key by the caller). For our own account it also becomes our profile, as the relay
    /// holds it.
    pub fn store_fetched_profile(
        &self,
        me: UserId,
        user: UserId,
        key: Vec<u8>,
        profile: Profile,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(PROFILES)?;
            let held: Option<KnownProfile> = table
                .get(user.as_bytes())?
                .map(|bytes| {
                    txn.at_rest
                        .open_record("profiles", user.as_bytes(), bytes.value())
                })
                .transpose()?;
            let Some(mut known) = held else {
                return Ok(());
            };
            if known
                .profile
                .as_ref()
                .is_some_and(|held| held.version >= profile.version)
            {
                return Ok(());
            }
            known.profile = Some(profile.clone());
            let sealed = txn
                .at_rest
                .seal_record("profiles", user.as_bytes(), &known)?;
            table.insert(user.as_bytes(), sealed.as_slice())?;
            drop(table);
            if user == me && own_in(txn)?.is_none_or(|own| own.profile.version < profile.version) {
                write_own(
                    txn,
                    &OwnProfile {
                        key,
                        profile,
                        uploaded: true,
                    },
                )?;
                // Another device of ours shared it with our contacts and devices.
                mark_all_shared(txn)?;
            }
            Ok(())
        })
    }

    /// The profile name of `user` to show next to their contact name: only for contacts.
    pub fn profile_name(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        self.read(|txn| {
            if txn
                .open_table(CONTACT_NAMES)?
                .get(user.as_bytes())?
                .is_none()
            {
                return Ok(None);
            }
            let known: Option<KnownProfile> = txn
                .open_table(PROFILES)?
                .get(user.as_bytes())?
                .map(|bytes| {
                    txn.at_rest
                        .open_record("profiles", user.as_bytes(), bytes.value())
                })
                .transpose()?;
            Ok(known
                .and_then(|known| known.profile)
                .map(|profile| profile.name)
                .filter(|name| !name.is_empty()))
        })
    }

    /// Whether a contact that was sent our profile key is no longer a contact (the key must
    /// be replaced before our profile changes again).
    pub fn profile_key_leaked_to_removed(&self) -> Result<bool, StoreError> {
        self.read(|txn| {
            let names = txn.open_table(CONTACT_NAMES)?;
            for entry in txn.open_table(PROFILE_SHARED)?.iter()? {
                let (user, _) = entry?;
                if names.get(user.value())?.is_none() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Replaces our profile key (a contact was removed): a fresh key, the profile re-sealed
    /// as the next version (uploaded before the new key is shared), and the removed
    /// contacts forgotten as key holders. Returns the new version.
    pub fn rotate_profile_key(&self) -> Result<Option<u64>, StoreError> {
        self.write(|txn| {
            let Some(mut own) = own_in(txn)? else {
                return Ok(None);
            };
            own.key = ProfileKey::generate().to_bytes();
            own.profile.version += 1;
            own.uploaded = false;
            write_own(txn, &own)?;
            let names = txn.open_table(CONTACT_NAMES)?;
            let mut shared = txn.open_table(PROFILE_SHARED)?;
            let mut removed = Vec::new();
            for entry in shared.iter()? {
                let (user, _) = entry?;
                if names.get(user.value())?.is_none() {
                    removed.push(*user.value());
                }
            }
            for user in &removed {
                shared.remove(user)?;
            }
            Ok(Some(own.profile.version))
        })
    }

    /// Queues our profile key (with its version) for every contact, and our own other
    /// devices, that has not been sent this version yet; returns how many users.
    pub fn share_profile_key(&self, me: UserId) -> Result<usize, StoreError> {
        self.write(|txn| {
            let Some(own) = own_in(txn)? else {
                return Ok(0);
            };
            if !own.uploaded {
                return Ok(0);
            }
            let version = own.profile.version;
            let payload = Payload::ProfileKey {
                key: own.key.clone(),
                version,
            };
            let contacts: Vec<[u8; 32]> = txn
                .open_table(CONTACT_NAMES)?
                .iter()?
                .map(|entry| entry.map(|(user, _)| *user.value()))
                .collect::<Result<_, _>>()?;
            let mut sent = 0;
            for user in contacts {
                let mut shared = txn.open_table(PROFILE_SHARED)?;
                if shared.get(&user)?.is_some_and(|got| got.value() >= version) {
                    continue;
                }
                shared.insert(&user, version)?;
                drop(shared);
                outbox::enqueue_payload(
                    txn,
                    UserId::from_bytes(user),
                    Kind::KeyShare,
                    payload.clone(),
                )?;
                sent += 1;
            }
            let self_shared = txn
                .open_table(META)?
                .get(META_PROFILE_SELF_SHARED)?
                .and_then(|bytes| <[u8; 8]>::try_from(bytes.value()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if self_shared < version {
                txn.open_table(META)?
                    .insert(META_PROFILE_SELF_SHARED, version.to_be_bytes().as_slice())?;
                if device_lists::listed_devices(txn, &me)?.len() >= 2 {
                    outbox::enqueue_payload(txn, me, Kind::KeyShare, payload)?;
                    sent += 1;
                }
            }
            Ok(sent)
        })
    }
}

/// Records every contact and our other devices as holding our current version (another
/// device of ours shared it).
fn mark_all_shared(txn: &WriteTxn<'_>) -> Result<(), StoreError> {
    let Some(own) = own_in(txn)? else {
        return Ok(());
    };
    let version = own.profile.version;
    let contacts: Vec<[u8; 32]> = txn
        .open_table(CONTACT_NAMES)?
        .iter()?
        .map(|entry| entry.map(|(user, _)| *user.value()))
        .collect::<Result<_, _>>()?;
    let mut shared = txn.open_table(PROFILE_SHARED)?;
    for user in contacts {
        shared.insert(&user, version)?;
    }
    txn.open_table(META)?
        .insert(META_PROFILE_SELF_SHARED, version.to_be_bytes().as_slice())?;
    Ok(())
}

/// Opens the profile tables so readers never meet a missing one.
pub(super) fn create_tables(txn: &WriteTxn<'_>) -> Result<(), StoreError> {
    txn.open_table(OWN_PROFILE)?;
    txn.open_table(PROFILES)?;
    txn.open_table(PROFILE_SHARED)?;
    Ok(())
}
