//! Property tests of link codes and link packages: round trips, and no input makes a decoder panic or allocate beyond its bound.
#![allow(clippy::unwrap_used, missing_docs)]

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use tidings_protocol::{
    Address, BoundedVec, DecodeError, DeviceCert, DeviceId, LinkCode, LinkCodeError, LinkPackage,
    LinkPackageError, LinkSecret, UserId,
    limits::{MAX_CARD_ADDRS, MAX_DEVICE_NAME_LEN},
    link::{MAX_LINK_CODE_LEN, MAX_LINK_PACKAGE_PLAINTEXT},
};

fn key(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

fn arb_code() -> impl Strategy<Value = LinkCode> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(device, secret)| LinkCode {
        device: DeviceId::from(&key(device).verifying_key()),
        secret: LinkSecret::from_bytes(secret),
    })
}

fn arb_package() -> impl Strategy<Value = (DeviceId, LinkPackage)> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        "[a-zA-Z0-9]{1,52}",
        proptest::collection::vec("/ip4/[0-9.]{7,15}/tcp/[0-9]{1,5}", 1..=MAX_CARD_ADDRS),
        "[^\\p{Cc}]{0,16}",
        any::<u64>(),
    )
        .prop_map(
            |(account, device, approver, issued, relay, addrs, name, version)| {
                let account = key(account);
                let device = DeviceId::from(&key(device).verifying_key());
                let user = UserId::from(&account.verifying_key());
                let package = LinkPackage {
                    cert: DeviceCert::issue(&account, device, issued),
                    user,
                    relay,
                    relay_addrs: BoundedVec::new(addrs).unwrap(),
                    approver: Address {
                        user,
                        device: DeviceId::from(&key(approver).verifying_key()),
                    },
                    name,
                    list_version: version,
                };
                (device, package)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn link_codes_round_trip_through_text(code in arb_code()) {
        let text = code.to_string();
        prop_assert!(text.len() <= MAX_LINK_CODE_LEN);
        prop_assert_eq!(text.parse::<LinkCode>(), Ok(code));
    }

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,200}") {
        tidings_protocol::fuzzing::link(text.as_bytes());
        tidings_protocol::fuzzing::link(format!("tidings-link:{text}").as_bytes());
    }

    #[test]
    fn link_packages_round_trip_and_check((device, package) in arb_package()) {
        let bytes = package.encode();
        prop_assert!(bytes.len() <= MAX_LINK_PACKAGE_PLAINTEXT);
        let decoded = LinkPackage::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &package);
        prop_assert_eq!(decoded.check_for(device), Ok(()));
        prop_assert_eq!(
            decoded.check_for(package.approver.device),
            Err(LinkPackageError::WrongDevice)
        );
    }

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        tidings_protocol::fuzzing::link(&bytes);
    }

    #[test]
    fn mutated_packages_are_refused_or_round_trip(
        (_, package) in arb_package(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = package.encode();
        for (at, value) in flips {
            let index = at.index(bytes.len());
            bytes[index] = value;
        }
        tidings_protocol::fuzzing::link(&bytes);
    }
}

#[test]
fn a_package_for_another_account_or_with_a_forged_cert_is_refused() {
    let account = key([1; 32]);
    let other = key([3; 32]);
    let device = DeviceId::from(&key([2; 32]).verifying_key());
    let user = UserId::from(&account.verifying_key());
    let good = LinkPackage {
        cert: DeviceCert::issue(&account, device, 7),
        user,
        relay: "relay".into(),
        relay_addrs: BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/1".into()]).unwrap(),
        approver: Address { user, device },
        name: "laptop".into(),
        list_version: 2,
    };
    assert_eq!(good.check_for(device), Ok(()));

    let mut foreign = good.clone();
    foreign.user = UserId::from(&other.verifying_key());
    assert_eq!(foreign.check_for(device), Err(LinkPackageError::WrongUser));

    let mut forged = good.clone();
    forged.cert.issued_at_ms += 1;
    assert!(matches!(
        forged.check_for(device),
        Err(LinkPackageError::BadCertificate(_))
    ));

    let mut nowhere = good.clone();
    nowhere.relay_addrs = BoundedVec::default();
    assert_eq!(
        nowhere.check_for(device),
        Err(LinkPackageError::NoRelayAddress)
    );

    let mut long_name = good;
    long_name.name = "x".repeat(MAX_DEVICE_NAME_LEN + 1);
    assert!(matches!(
        LinkPackage::decode(&long_name.encode()),
        Err(LinkPackageError::Decode(DecodeError::Invalid {
            field: "name",
            ..
        }))
    ));
    assert!(matches!(
        LinkPackage::decode(&vec![0; MAX_LINK_PACKAGE_PLAINTEXT + 1]),
        Err(LinkPackageError::Decode(DecodeError::TooLarge { .. }))
    ));
    assert_eq!(
        "tidings-link:".parse::<LinkCode>(),
        Err(LinkCodeError::WrongLength(0))
    );
}

fn seed_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/link")
}

/// Seeds of the `link` fuzz target: codes as text, and valid and broken packages.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let account = key([7; 32]);
    let device = DeviceId::from(&key([8; 32]).verifying_key());
    let user = UserId::from(&account.verifying_key());
    let code = LinkCode {
        device,
        secret: LinkSecret::from_bytes([9; 32]),
    };
    let package = LinkPackage {
        cert: DeviceCert::issue(&account, device, 1_700_000_000_000),
        user,
        relay: "12D3KooWGzQwFkqBSaQGVbE4kWQeF9n4xnS3Yc7K2pmN4YwzFcRb".into(),
        relay_addrs: BoundedVec::new(vec![
            "/ip4/203.0.113.5/tcp/4717".into(),
            "/ip4/203.0.113.5/udp/4717/quic-v1".into(),
        ])
        .unwrap(),
        approver: Address {
            user,
            device: DeviceId::from(&key([10; 32]).verifying_key()),
        },
        name: "laptop".into(),
        list_version: 3,
    };
    let mut forged = package.clone();
    forged.cert.signature[5] ^= 1;
    let mut truncated = package.encode();
    truncated.truncate(truncated.len() / 2);
    vec![
        ("code", code.to_string().into_bytes()),
        ("code-bad-prefix", b"tidings:3mJr7AoUXx2Wqd".to_vec()),
        ("package", package.encode()),
        ("package-forged", forged.encode()),
        ("package-truncated", truncated),
    ]
}

/// The committed seeds are what `write_seeds` makes, and the fuzz check holds on them.
#[test]
fn the_fuzz_seeds_are_current() {
    for (name, bytes) in seeds() {
        let committed = std::fs::read(seed_dir().join(name)).unwrap();
        assert_eq!(committed, bytes, "fuzz/seeds/link/{name} is stale");
        tidings_protocol::fuzzing::link(&committed);
    }
}

/// Writes the seeds of the `link` fuzz target.
#[test]
#[ignore = "writes fuzz/seeds/link; run by hand after changing the link formats"]
fn write_seeds() {
    std::fs::create_dir_all(seed_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(seed_dir().join(name), bytes).unwrap();
    }
}
