//! Device lists: an account's signed, versioned statement of which devices belong to it.
//!
//! The list is signed by the account key over `"TDL1" || CBOR(list)`, so it is checked against
//! the user id it names. A newer list replaces a held one only with a strictly greater version,
//! so a relay or client never rolls back to a list that still names a removed device.

use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::{
    codec::{self, BoundedVec, DecodeError},
    ids::{DeviceId, UserId},
    limits::{MAX_DEVICE_LIST_BYTES, MAX_DEVICE_NAME_LEN, MAX_DEVICES_PER_ACCOUNT},
};

const DEVICE_LIST_MAGIC: &[u8; 4] = b"TDL1";

/// Why a device list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceListError {
    /// It does not decode or is larger than [`MAX_DEVICE_LIST_BYTES`].
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The account key of the user it names did not sign it (forged or altered).
    #[error("device list signature does not verify")]
    Forged,
    /// It names no device.
    #[error("device list is empty")]
    Empty,
    /// It names more devices than [`MAX_DEVICES_PER_ACCOUNT`].
    #[error("device list names {count} devices, more than {max}")]
    TooManyDevices {
        /// How many it names.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// It names one device twice.
    #[error("device {0} is listed twice")]
    DuplicateDevice(DeviceId),
    /// A device name is too long or holds control characters.
    #[error("bad name for device {device}: {reason}")]
    BadName {
        /// The device whose name it is.
        device: DeviceId,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// It is the list of another user than the held one.
    #[error("device list is for another user")]
    WrongUser,
    /// Its version is not greater than the held list's (a replay or a rollback).
    #[error("device list version {got} is not newer than {held}")]
    Stale {
        /// Its version.
        got: u64,
        /// The version of the held list.
        held: u64,
    },
}

/// One device of an account, as the account lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// The device.
    #[serde(rename = "d")]
    pub device: DeviceId,
    /// A name the user gave it, at most [`MAX_DEVICE_NAME_LEN`] bytes of UTF-8, no control
    /// characters.
    #[serde(rename = "n")]
    pub name: String,
    /// When it was added, in milliseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub added_at_ms: u64,
}

impl DeviceEntry {
    fn check_name(&self) -> Result<(), DeviceListError> {
        let bad = |reason| DeviceListError::BadName {
            device: self.device,
            reason,
        };
        if self.name.len() > MAX_DEVICE_NAME_LEN {
            return Err(bad("too long"));
        }
        if self.name.chars().any(char::is_control) {
            return Err(bad("control characters"));
        }
        Ok(())
    }
}

/// The devices of one account at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// The account (its id is the account's public key, which signs the list).
    #[serde(rename = "u")]
    pub user: UserId,
    /// Grows with every change of the list.
    #[serde(rename = "v")]
    pub version: u64,
    /// The devices, each once.
    #[serde(rename = "d")]
    pub devices: BoundedVec<DeviceEntry, MAX_DEVICES_PER_ACCOUNT>,
}

impl DeviceList {
    /// A list of `devices` for `user` at `version`, refused if it breaks a shape rule.
    pub fn new(
        user: UserId,
        version: u64,
        devices: Vec<DeviceEntry>,
    ) -> Result<Self, DeviceListError> {
        let count = devices.len();
        let devices = BoundedVec::new(devices).map_err(|_| DeviceListError::TooManyDevices {
            count,
            max: MAX_DEVICES_PER_ACCOUNT,
        })?;
        let list = Self {
            user,
            version,
            devices,
        };
        list.check_shape()?;
        Ok(list)
    }

    /// Signs the list with the account key. Only the key of `self.user` makes a list that
    /// verifies; any other key makes one [`SignedDeviceList::verify`] refuses as forged.
    pub fn sign(self, account_key: &SigningKey) -> SignedDeviceList {
        let signature = account_key.sign(&signed_bytes(&self)).to_bytes();
        SignedDeviceList {
            list: self,
            signature,
        }
    }

    /// Whether `device` is on the list.
    pub fn contains(&self, device: &DeviceId) -> bool {
        self.devices.iter().any(|entry| entry.device == *device)
    }

    /// Checks the shape: not empty, under the cap, each device once, good names.
    fn check_shape(&self) -> Result<(), DeviceListError> {
        if self.devices.is_empty() {
            return Err(DeviceListError::Empty);
        }
        codec::check_count("devices", self.devices.len(), MAX_DEVICES_PER_ACCOUNT).map_err(
            |_| DeviceListError::TooManyDevices {
                count: self.devices.len(),
                max: MAX_DEVICES_PER_ACCOUNT,
            },
        )?;
        let mut ids: Vec<DeviceId> = self.devices.iter().map(|entry| entry.device).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(DeviceListError::DuplicateDevice(pair[0]));
        }
        self.devices.iter().try_for_each(DeviceEntry::check_name)
    }
}

/// A device list with the account key's signature, as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDeviceList {
    /// The list.
    #[serde(rename = "l")]
    pub list: DeviceList,
    /// Account key's signature over `"TDL1" || CBOR(list)`.
    #[serde(rename = "s", with = "serde_bytes")]
    pub signature: [u8; 64],
}

fn signed_bytes(list: &DeviceList) -> Vec<u8> {
    let mut bytes = DEVICE_LIST_MAGIC.to_vec();
    codec::encode_into(list, &mut bytes);
    bytes
}

impl SignedDeviceList {
    /// Checks the shape and the signature of the account the list names.
    pub fn verify(&self) -> Result<(), DeviceListError> {
        self.list.check_shape()?;
        let key = self
            .list
            .user
            .verifying_key()
            .map_err(|_| DeviceListError::Forged)?;
        key.verify_strict(
            &signed_bytes(&self.list),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| DeviceListError::Forged)
    }

    /// Checks that this list may replace `held`: the same user, a greater version, and it
    /// verifies.
    pub fn check_successor(&self, held: &SignedDeviceList) -> Result<(), DeviceListError> {
        if self.list.user != held.list.user {
            return Err(DeviceListError::WrongUser);
        }
        if self.list.version <= held.list.version {
            return Err(DeviceListError::Stale {
                got: self.list.version,
                held: held.list.version,
            });
        }
        self.verify()
    }

    /// Whether `device` is on the list (check [`Self::verify`] first).
    pub fn contains(&self, device: &DeviceId) -> bool {
        self.list.contains(device)
    }

    /// Encodes for a frame, a DHT value or storage.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes at most [`MAX_DEVICE_LIST_BYTES`], checking bounds (not the signature).
    pub fn decode(bytes: &[u8]) -> Result<Self, DeviceListError> {
        Ok(codec::decode(bytes, MAX_DEVICE_LIST_BYTES)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn device(seed: u8) -> DeviceId {
        DeviceId::from(&key(seed).verifying_key())
    }

    fn entry(seed: u8) -> DeviceEntry {
        DeviceEntry {
            device: device(seed),
            name: format!("phone {seed}"),
            added_at_ms: u64::from(seed),
        }
    }

    fn list(version: u64, devices: Vec<DeviceEntry>) -> DeviceList {
        let user = UserId::from(&key(1).verifying_key());
        DeviceList {
            user,
            version,
            devices: BoundedVec::new(devices).unwrap(),
        }
    }

    fn signed(version: u64) -> SignedDeviceList {
        list(version, vec![entry(10), entry(11)]).sign(&key(1))
    }

    #[test]
    fn a_signed_list_verifies_and_round_trips() {
        let signed = signed(1);
        assert_eq!(signed.verify(), Ok(()));
        assert_eq!(
            SignedDeviceList::decode(&signed.encode()),
            Ok(signed.clone())
        );
        assert!(signed.contains(&device(10)));
        assert!(!signed.contains(&device(12)));
    }

    #[test]
    fn an_altered_list_is_forged() {
        let mut signed = signed(1);
        signed.list.devices = BoundedVec::new(vec![entry(10), entry(12)]).unwrap();
        assert_eq!(signed.verify(), Err(DeviceListError::Forged));
        let mut signed = self::signed(1);
        signed.signature[0] ^= 1;
        assert_eq!(signed.verify(), Err(DeviceListError::Forged));
    }

    #[test]
    fn another_accounts_signature_is_forged() {
        let signed = list(1, vec![entry(10)]).sign(&key(2));
        assert_eq!(signed.verify(), Err(DeviceListError::Forged));
    }

    #[test]
    fn a_list_signature_is_not_a_descriptor_or_cert_signature() {
        let signed = signed(1);
        let message = crate::codec::encode(&signed.list);
        let key = signed.list.user.verifying_key().unwrap();
        assert!(
            key.verify_strict(&message, &Signature::from_bytes(&signed.signature))
                .is_err()
        );
    }

    #[test]
    fn stale_equal_and_foreign_successors_are_refused() {
        let held = signed(5);
        assert_eq!(
            signed(4).check_successor(&held),
            Err(DeviceListError::Stale { got: 4, held: 5 })
        );
        assert_eq!(
            signed(5).check_successor(&held),
            Err(DeviceListError::Stale { got: 5, held: 5 })
        );
        assert_eq!(signed(6).check_successor(&held), Ok(()));
        let mut foreign = list(6, vec![entry(10)]);
        foreign.user = UserId::from(&key(2).verifying_key());
        let foreign = foreign.sign(&key(2));
        assert_eq!(foreign.verify(), Ok(()));
        assert_eq!(
            foreign.check_successor(&held),
            Err(DeviceListError::WrongUser)
        );
        let mut forged = signed(6);
        forged.signature[3] ^= 0x10;
        assert_eq!(forged.check_successor(&held), Err(DeviceListError::Forged));
    }

    #[test]
    fn empty_and_duplicate_lists_are_refused() {
        let user = UserId::from(&key(1).verifying_key());
        assert_eq!(
            DeviceList::new(user, 1, Vec::new()),
            Err(DeviceListError::Empty)
        );
        assert_eq!(
            list(1, Vec::new()).sign(&key(1)).verify(),
            Err(DeviceListError::Empty)
        );
        let mut twice = entry(11);
        twice.device = device(10);
        let duplicate = list(1, vec![entry(10), entry(11), twice]);
        assert_eq!(
            duplicate.sign(&key(1)).verify(),
            Err(DeviceListError::DuplicateDevice(device(10)))
        );
    }

    #[test]
    fn one_device_over_the_cap_is_refused() {
        let user = UserId::from(&key(1).verifying_key());
        let entries: Vec<DeviceEntry> = (0..=MAX_DEVICES_PER_ACCOUNT)
            .map(|seed| entry(u8::try_from(seed).unwrap()))
            .collect();
        assert_eq!(
            DeviceList::new(user, 1, entries.clone()),
            Err(DeviceListError::TooManyDevices {
                count: MAX_DEVICES_PER_ACCOUNT + 1,
                max: MAX_DEVICES_PER_ACCOUNT
            })
        );
        // The same lists on the wire: the one at the cap decodes, one more does not.
        #[derive(Serialize)]
        struct Unbounded<'a> {
            #[serde(rename = "u")]
            user: UserId,
            #[serde(rename = "v")]
            version: u64,
            #[serde(rename = "d")]
            devices: &'a [DeviceEntry],
        }
        let wire = |devices: &[DeviceEntry]| {
            let list = Unbounded {
                user,
                version: 1,
                devices,
            };
            // {"l": list, "s": 64 zero bytes}
            let mut bytes = vec![0xa2, 0x61, b'l'];
            bytes.extend_from_slice(&crate::codec::encode(&list));
            bytes.extend_from_slice(&[0x61, b's', 0x58, 64]);
            bytes.extend_from_slice(&[0; 64]);
            bytes
        };
        let at_cap = SignedDeviceList::decode(&wire(&entries[..MAX_DEVICES_PER_ACCOUNT]));
        assert!(at_cap.is_ok(), "{at_cap:?}");
        assert!(matches!(
            SignedDeviceList::decode(&wire(&entries)),
            Err(DeviceListError::Decode(DecodeError::Malformed(_)))
        ));
    }

    #[test]
    fn bad_names_are_refused() {
        let mut long = entry(10);
        long.name = "x".repeat(MAX_DEVICE_NAME_LEN + 1);
        assert_eq!(
            list(1, vec![long]).sign(&key(1)).verify(),
            Err(DeviceListError::BadName {
                device: device(10),
                reason: "too long"
            })
        );
        let mut control = entry(10);
        control.name = "laptop\u{1b}[2J".into();
        assert_eq!(
            list(1, vec![control]).sign(&key(1)).verify(),
            Err(DeviceListError::BadName {
                device: device(10),
                reason: "control characters"
            })
        );
        let mut longest = entry(10);
        longest.name = "é".repeat(MAX_DEVICE_NAME_LEN / 2);
        assert_eq!(list(1, vec![longest]).sign(&key(1)).verify(), Ok(()));
    }

    #[test]
    fn the_largest_list_fits_its_bound_and_oversized_bytes_are_refused() {
        let user = UserId::from(&key(1).verifying_key());
        let entries = (0..MAX_DEVICES_PER_ACCOUNT)
            .map(|seed| DeviceEntry {
                device: device(u8::try_from(seed).unwrap()),
                name: "n".repeat(MAX_DEVICE_NAME_LEN),
                added_at_ms: u64::MAX,
            })
            .collect();
        let largest = DeviceList::new(user, u64::MAX, entries)
            .unwrap()
            .sign(&key(1));
        let bytes = largest.encode();
        assert!(
            bytes.len() <= MAX_DEVICE_LIST_BYTES,
            "{} bytes",
            bytes.len()
        );
        assert_eq!(SignedDeviceList::decode(&bytes), Ok(largest));
        let oversized = vec![0u8; MAX_DEVICE_LIST_BYTES + 1];
        assert_eq!(
            SignedDeviceList::decode(&oversized),
            Err(DeviceListError::Decode(DecodeError::TooLarge {
                len: MAX_DEVICE_LIST_BYTES + 1,
                max: MAX_DEVICE_LIST_BYTES
            }))
        );
    }
}
