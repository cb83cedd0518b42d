//! Upgrades: a data dir written by an earlier release starts and delivers what waited in it;
//! one written by a newer release is refused with a clear error; a new one records its schema.
//!
//! The fixture `tests/fixtures/relay-v1` is a data dir written by the first release (schema
//! 1, before files recorded their version): two registered users, mail waiting for each. It
//! was written by [`write_relay_fixture`]; a release that changes the schema writes
//! `relay-v<N>` with it next to the older ones, which stay and keep being opened here.
//! `relay-v2` (accounts of several devices) was written by [`write_relay_fixture_v2`]: Alice
//! with two devices under a device list, Bob with one, mail waiting for each device.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use redb::{Database, TableDefinition};
use tidings_protocol::store::StoreError;
use tidings_relay::{
    STORE_FILE,
    invites::{INVITES_FILE, Invites},
    store::schema,
    testing::{RelayDir, loopback_config},
};

use crate::common::RawDevice;

/// Account and device keys of the fixture's two users (fixed, so the tests can be them).
const ALICE: ([u8; 32], [u8; 32]) = ([0xa1; 32], [0xa2; 32]);
const BOB: ([u8; 32], [u8; 32]) = ([0xb1; 32], [0xb2; 32]);
/// What waits in each mailbox, in order.
const FOR_BOB: [&str; 3] = ["one for bob", "two for bob", "three for bob"];
const FOR_ALICE: [&str; 2] = ["one for alice", "two for alice"];

fn fixture_dir() -> PathBuf {
    fixture_dir_of(1)
}

fn fixture_dir_of(schema: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/relay-v{schema}"))
}

/// A copy of the fixture in a temp dir (the committed files stay untouched); the key is made
/// owner-only again, as git does not keep that.
fn copy_fixture() -> tempfile::TempDir {
    copy_fixture_of(1)
}

fn copy_fixture_of(schema: u32) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir_of(schema)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), temp.path().join(entry.file_name())).unwrap();
    }
    let key = temp.path().join(tidings_relay::node_key::KEY_FILE);
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    temp
}

async fn connect_as(address: &libp2p::Multiaddr, keys: ([u8; 32], [u8; 32])) -> RawDevice {
    let (account, device) = keys;
    RawDevice::connect_as(
        address,
        SigningKey::from_bytes(&account),
        SigningKey::from_bytes(&device),
    )
    .await
}

/// The version a database file records (the relay must not be running on it).
fn recorded(path: &Path) -> Option<u32> {
    schema::recorded(&Database::open(path).unwrap()).unwrap()
}

/// Stamps a database file with a schema version.
fn stamp(path: &Path, version: u32) {
    let meta: TableDefinition<&str, u32> = TableDefinition::new("meta");
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(meta)
        .unwrap()
        .insert(schema::SCHEMA_VERSION, version)
        .unwrap();
    txn.commit().unwrap();
}

/// The store error somewhere in `error`'s source chain.
fn store_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a StoreError> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<StoreError>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// Writes the fixture. Run it only with the release the fixture stands for:
/// `cargo nextest run -p tidings-relay --test operator --run-ignored only write_relay_fixture`
#[tokio::test]
#[ignore = "writes the committed fixture tests/fixtures/relay-v1"]
async fn write_relay_fixture() {
    let path = fixture_dir();
    let _ = std::fs::remove_dir_all(&path);
    let dir = RelayDir::init(path, loopback_config()).unwrap();
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = connect_as(&address, ALICE).await;
    alice.register().await;
    let mut bob = connect_as(&address, BOB).await;
    bob.register().await;
    for text in FOR_BOB {
        let envelope = alice.envelope_to(bob.address(), text.as_bytes());
        alice
            .send(vec![envelope.sign(&alice.device)])
            .await
            .unwrap();
    }
    for text in FOR_ALICE {
        let envelope = bob.envelope_to(alice.address(), text.as_bytes());
        bob.send(vec![envelope.sign(&bob.device)]).await.unwrap();
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn a_first_release_data_dir_starts_and_delivers_what_waited() {
    let temp = copy_fixture();
    assert_eq!(
        recorded(&temp.path().join(STORE_FILE)),
        None,
        "the fixture predates recorded schemas"
    );
    let mut dir = RelayDir::existing(temp.path().to_path_buf(), loopback_config());
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();

    for (keys, expected) in [(BOB, &FOR_BOB[..]), (ALICE, &FOR_ALICE[..])] {
        let mut device = connect_as(&address, keys).await;
        let texts: Vec<String> = device
            .drain()
            .await
            .iter()
            .map(|raw| {
                let envelope = raw.open().unwrap();
                String::from_utf8(envelope.body).unwrap()
            })
            .collect();
        assert_eq!(texts, expected);
    }
    dir.stop(relay).await;

    assert_eq!(
        recorded(&temp.path().join(STORE_FILE)),
        Some(schema::RELAY.current())
    );
    assert_eq!(
        recorded(&temp.path().join(INVITES_FILE)),
        Some(schema::INVITES.current())
    );
}

#[tokio::test]
async fn a_new_data_dir_records_the_current_schema() {
    let mut dir = RelayDir::temp(|_| {}).unwrap();
    let relay = dir.start(None).await.unwrap();
    dir.stop(relay).await;
    assert_eq!(
        recorded(&dir.path().join(STORE_FILE)),
        Some(schema::RELAY.current())
    );
    assert_eq!(
        recorded(&dir.path().join(INVITES_FILE)),
        Some(schema::INVITES.current())
    );
}

#[tokio::test]
async fn a_data_dir_of_a_newer_release_is_refused_with_both_versions() {
    let temp = copy_fixture();
    let newer = schema::RELAY.current() + 1;
    stamp(&temp.path().join(STORE_FILE), newer);
    let dir = RelayDir::existing(temp.path().to_path_buf(), loopback_config());
    let Err(error) = dir.start(None).await else {
        panic!("a relay started on a newer schema");
    };
    match store_error(&error) {
        Some(StoreError::NewerSchema { file, found, known }) => {
            assert_eq!(*file, STORE_FILE);
            assert_eq!(*found, newer);
            assert_eq!(*known, schema::RELAY.current());
        }
        other => panic!("expected NewerSchema, got {other:?} from {error}"),
    }
    // Refused before anything was written: the file still says what the newer release wrote.
    assert_eq!(recorded(&temp.path().join(STORE_FILE)), Some(newer));
    assert!(
        pre_upgrade_dirs(temp.path()).is_empty(),
        "nothing is copied aside for a data dir this build refuses"
    );

    // `tidings-relay run` says so in words.
    let data_dir = temp.path().to_str().unwrap();
    // Its own thread: `run` builds its own runtime.
    let error = std::thread::spawn({
        let data_dir = data_dir.to_string();
        move || tidings_relay::cli::main_from(["tidings-relay", "run", "--data-dir", &data_dir])
    })
    .join()
    .unwrap()
    .unwrap_err();
    let shown = format!("{error:#}");
    assert!(
        shown.contains(&format!(
            "this data dir was written by a newer Tidings (schema {newer}); this build knows up to {}",
            schema::RELAY.current()
        )),
        "{shown}"
    );
}

#[test]
fn an_invite_database_of_a_newer_release_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    drop(Invites::open(temp.path()).unwrap());
    let newer = schema::INVITES.current() + 1;
    stamp(&temp.path().join(INVITES_FILE), newer);
    let Err(error) = Invites::open(temp.path()) else {
        panic!("an invite database of a newer schema was opened");
    };
    assert!(
        matches!(error, StoreError::NewerSchema { file, found, .. } if file == INVITES_FILE && found == newer),
        "{error}"
    );
}

/// Alice's second device in the schema-2 fixture.
const ALICE_LAPTOP: [u8; 32] = [0xa3; 32];
/// What waits in each mailbox of the schema-2 fixture, in order.
const FOR_ALICE_PHONE: [&str; 1] = ["to alice's phone"];
const FOR_ALICE_LAPTOP: [&str; 2] = ["to alice's laptop", "from alice's phone"];

fn alice_list(version: u64, devices: &[[u8; 32]]) -> tidings_protocol::SignedDeviceList {
    let account = SigningKey::from_bytes(&ALICE.0);
    let entries = devices
        .iter()
        .map(|device| tidings_protocol::DeviceEntry {
            device: tidings_protocol::DeviceId::from(
                &SigningKey::from_bytes(device).verifying_key(),
            ),
            name: "fixture device".into(),
            added_at_ms: 1,
        })
        .collect();
    tidings_protocol::DeviceList::new(
        tidings_protocol::UserId::from(&account.verifying_key()),
        version,
        entries,
    )
    .unwrap()
    .sign(&account)
}

async fn register(device: &mut RawDevice, list: Option<tidings_protocol::SignedDeviceList>) {
    use tidings_protocol::client::{Register, Request, Response};
    let cert = device.cert();
    let answer = device
        .request(Request::Register(Box::new(Register {
            cert,
            invite: None,
            list: list.map(Box::new),
        })))
        .await;
    assert!(
        matches!(answer, Ok(Response::Registered { .. })),
        "{answer:?}"
    );
}

/// Writes the schema-2 fixture. Run it only with the release the fixture stands for:
/// `cargo nextest run -p tidings-relay --test operator --run-ignored only write_relay_fixture_v2`
#[tokio::test]
#[ignore = "writes the committed fixture tests/fixtures/relay-v2"]
async fn write_relay_fixture_v2() {
    let path = fixture_dir_of(2);
    let _ = std::fs::remove_dir_all(&path);
    let dir = RelayDir::init(path, loopback_config()).unwrap();
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let mut phone = connect_as(&address, ALICE).await;
    register(&mut phone, Some(alice_list(1, &[ALICE.1, ALICE_LAPTOP]))).await;
    phone.register().await;
    let mut laptop = connect_as(&address, (ALICE.0, ALICE_LAPTOP)).await;
    register(&mut laptop, None).await;
    let mut bob = connect_as(&address, BOB).await;
    bob.register().await;
    let send = |from: &RawDevice, to: tidings_protocol::Address, text: &str| {
        from.envelope_to(to, text.as_bytes()).sign(&from.device)
    };
    bob.send(vec![send(&bob, phone.address(), FOR_ALICE_PHONE[0])])
        .await
        .unwrap();
    bob.send(vec![send(&bob, laptop.address(), FOR_ALICE_LAPTOP[0])])
        .await
        .unwrap();
    phone
        .send(vec![send(&phone, laptop.address(), FOR_ALICE_LAPTOP[1])])
        .await
        .unwrap();
    for text in FOR_BOB {
        phone
            .send(vec![send(&phone, bob.address(), text)])
            .await
            .unwrap();
    }
    relay.shutdown().await;
}

/// What a device drains, as text.
async fn drained(address: &libp2p::Multiaddr, keys: ([u8; 32], [u8; 32])) -> Vec<String> {
    let mut device = connect_as(address, keys).await;
    device
        .drain()
        .await
        .iter()
        .map(|raw| String::from_utf8(raw.open().unwrap().body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_schema_2_data_dir_delivers_to_each_device() {
    let temp = copy_fixture_of(2);
    assert_eq!(recorded(&temp.path().join(STORE_FILE)), Some(2));
    let mut dir = RelayDir::existing(temp.path().to_path_buf(), loopback_config());
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    assert_eq!(drained(&address, ALICE).await, FOR_ALICE_PHONE);
    assert_eq!(
        drained(&address, (ALICE.0, ALICE_LAPTOP)).await,
        FOR_ALICE_LAPTOP
    );
    assert_eq!(drained(&address, BOB).await, FOR_BOB);
    dir.stop(relay).await;
    assert_eq!(
        recorded(&temp.path().join(STORE_FILE)),
        Some(schema::RELAY.current())
    );
}

#[tokio::test]
async fn a_first_release_account_keeps_its_device_and_adds_more_by_a_device_list() {
    use tidings_protocol::{
        ErrorCode,
        client::{Request, Response},
    };
    let temp = copy_fixture();
    let mut dir = RelayDir::existing(temp.path().to_path_buf(), loopback_config());
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let mut phone = connect_as(&address, ALICE).await;
    let mut bob = connect_as(&address, BOB).await;

    // The migrated device is the account's one device: it has its record (a claim finds it,
    // it just has no keys), and another device may not join without a list.
    let claim = bob
        .request(Request::ClaimBundle {
            device: phone.address(),
        })
        .await;
    assert_eq!(claim.unwrap_err().code, ErrorCode::NoKeys);
    let mut laptop = connect_as(&address, (ALICE.0, ALICE_LAPTOP)).await;
    let cert = laptop.cert();
    let refused = laptop
        .request(Request::Register(Box::new(
            tidings_protocol::client::Register {
                cert,
                invite: None,
                list: None,
            },
        )))
        .await;
    assert_eq!(refused.unwrap_err().code, ErrorCode::DeviceRevoked);

    // With a list from the account, it does; mail then reaches each device on its own.
    let published = phone
        .request(Request::PublishDeviceList {
            list: Box::new(alice_list(1, &[ALICE.1, ALICE_LAPTOP])),
        })
        .await;
    assert!(
        matches!(published, Ok(Response::DeviceList { .. })),
        "{published:?}"
    );
    register(&mut laptop, None).await;
    let to_laptop = bob
        .envelope_to(laptop.address(), b"to the new laptop")
        .sign(&bob.device);
    bob.send(vec![to_laptop]).await.unwrap();
    assert_eq!(
        drained(&address, (ALICE.0, ALICE_LAPTOP)).await,
        ["to the new laptop"]
    );
    assert_eq!(drained(&address, ALICE).await, FOR_ALICE);
    dir.stop(relay).await;
}

/// The `pre-upgrade-*` directories of a data dir.
fn pre_upgrade_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(tidings_relay::backup::PRE_UPGRADE_PREFIX))
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_migration_copies_the_old_files_aside_first() {
    use tidings_relay::backup::{Manifest, ManifestKind};
    let temp = copy_fixture();
    let mut dir = RelayDir::existing(temp.path().to_path_buf(), loopback_config());
    let relay = dir.start(None).await.unwrap();
    dir.stop(relay).await;

    let copies = pre_upgrade_dirs(temp.path());
    assert_eq!(copies.len(), 1, "{copies:?}");
    let copy = &copies[0];
    let name = copy.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&format!("pre-upgrade-1-{}-", schema::RELAY.current())),
        "{name}"
    );
    let manifest = Manifest::read(copy).unwrap();
    assert_eq!(manifest.kind, ManifestKind::PreUpgrade);
    assert_eq!(manifest.schemas.get(STORE_FILE), Some(&1));
    manifest.verify(copy).unwrap();
    // The copy is the first release's file, byte for byte, not the migrated one.
    for file in [STORE_FILE, INVITES_FILE, "relay.key", "relay.toml"] {
        assert!(
            std::fs::read(copy.join(file)).unwrap()
                == std::fs::read(fixture_dir().join(file)).unwrap(),
            "{file} differs from the fixture's"
        );
    }
    assert_eq!(recorded(&copy.join(STORE_FILE)), None);

    // A start that migrates nothing copies nothing.
    let relay = dir.start(None).await.unwrap();
    dir.stop(relay).await;
    assert_eq!(pre_upgrade_dirs(temp.path()).len(), 1);
}

#[tokio::test]
async fn no_backup_before_upgrade_migrates_without_a_copy() {
    let temp = copy_fixture();
    let options = tidings_relay::RelayOptions {
        backup_before_upgrade: false,
        ..tidings_relay::RelayOptions::new(temp.path().to_path_buf(), loopback_config())
    };
    let relay = tidings_relay::start(options).await.unwrap();
    relay.shutdown().await;
    assert!(pre_upgrade_dirs(temp.path()).is_empty());
    assert_eq!(
        recorded(&temp.path().join(STORE_FILE)),
        Some(schema::RELAY.current())
    );
}
