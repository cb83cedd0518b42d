//! Property tests of signed device lists, and the writer of their fuzz seeds.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use tidings_protocol::{
    DeviceEntry, DeviceId, DeviceList, SignedDeviceList, UserId, fuzzing,
    limits::{MAX_DEVICE_NAME_LEN, MAX_DEVICES_PER_ACCOUNT},
};

fn key(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

fn arb_entries() -> impl Strategy<Value = Vec<DeviceEntry>> {
    proptest::collection::btree_map(
        any::<[u8; 32]>(),
        ("[^\\p{Cc}]{0,16}", any::<u64>()),
        1..=MAX_DEVICES_PER_ACCOUNT,
    )
    .prop_map(|devices| {
        devices
            .into_iter()
            .map(|(seed, (name, added_at_ms))| DeviceEntry {
                device: DeviceId::from(&key(seed).verifying_key()),
                name,
                added_at_ms,
            })
            .collect()
    })
}

fn arb_signed() -> impl Strategy<Value = SignedDeviceList> {
    (any::<[u8; 32]>(), any::<u64>(), arb_entries()).prop_map(|(account, version, entries)| {
        let account = key(account);
        let user = UserId::from(&account.verifying_key());
        let list = DeviceList::new(user, version, entries);
        well_shaped(list).sign(&account)
    })
}

/// The strategy only makes well-shaped lists (distinct seeds give distinct keys).
fn well_shaped(list: Result<DeviceList, tidings_protocol::DeviceListError>) -> DeviceList {
    list.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn device_lists_round_trip_through_sign_encode_decode_verify(signed in arb_signed()) {
        let bytes = signed.encode();
        let decoded = SignedDeviceList::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&signed));
        prop_assert_eq!(decoded.unwrap().verify(), Ok(()));
        fuzzing::device_list(&bytes);
    }

    #[test]
    fn a_flipped_bit_never_verifies_as_another_list(signed in arb_signed(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = signed.encode();
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        // The signature covers the values, not the bytes: a flip that only re-spells a field
        // name (a text key as a byte string) decodes to the very same list, which verifies.
        if let Ok(flipped) = SignedDeviceList::decode(&bytes) {
            prop_assert!(flipped.verify().is_err() || flipped == signed, "{flipped:?}");
            prop_assert!(flipped.encode() != bytes || flipped.verify().is_err());
        }
    }
}

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/device_list")
}

/// Seeds of the `device_list` fuzz target: valid lists and a few refused ones.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let account = key([7; 32]);
    let user = UserId::from(&account.verifying_key());
    let entry = |seed: u8, name: &str| DeviceEntry {
        device: DeviceId::from(&key([seed; 32]).verifying_key()),
        name: name.into(),
        added_at_ms: 1_700_000_000_000 + u64::from(seed),
    };
    let list = |version, entries: Vec<DeviceEntry>| DeviceList {
        user,
        version,
        devices: tidings_protocol::BoundedVec::new(entries).unwrap(),
    };
    let valid = list(3, vec![entry(1, "laptop"), entry(2, "phone")]).sign(&account);
    let full = list(
        9,
        (0..MAX_DEVICES_PER_ACCOUNT)
            .map(|seed| {
                entry(
                    u8::try_from(seed).unwrap(),
                    &"n".repeat(MAX_DEVICE_NAME_LEN),
                )
            })
            .collect(),
    )
    .sign(&account);
    let mut forged = valid.clone();
    forged.signature[10] ^= 1;
    let duplicate = list(4, vec![entry(1, "a"), entry(1, "b")]).sign(&account);
    let bad_name = list(5, vec![entry(1, "tab\there")]).sign(&account);
    let other = list(6, vec![entry(1, "x")]).sign(&key([8; 32]));
    let mut truncated = valid.encode();
    truncated.truncate(truncated.len() / 2);
    vec![
        ("valid", valid.encode()),
        ("full", full.encode()),
        ("forged", forged.encode()),
        ("duplicate", duplicate.encode()),
        ("bad-name", bad_name.encode()),
        ("other-account", other.encode()),
        ("truncated", truncated),
    ]
}

/// The committed seeds are what `write_seeds` makes, and the fuzz check holds on them.
#[test]
fn the_fuzz_seeds_are_current() {
    for (name, bytes) in seeds() {
        let committed = std::fs::read(seed_dir().join(name)).unwrap();
        assert_eq!(committed, bytes, "fuzz/seeds/device_list/{name} is stale");
        fuzzing::device_list(&committed);
    }
}

/// Writes the seeds of the `device_list` fuzz target.
#[test]
#[ignore = "writes fuzz/seeds/device_list; run by hand after changing the device list format"]
fn write_seeds() {
    std::fs::create_dir_all(seed_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(seed_dir().join(name), bytes).unwrap();
    }
}
