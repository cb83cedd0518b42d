//! Upgrades: a client data dir written by an earlier release opens with its contact and
//! history; one written by a newer release is refused with a clear error; a new store records
//! its schema.
//!
//! The fixture `tests/fixtures/client-v1` is Alice's data dir as the first release wrote it
//! (schema 1, before stores recorded their version; key file without a passphrase): contact
//! "bob" and a short conversation with him. It was written by [`write_client_fixture`]; a
//! release that changes the schema writes `client-v<N>` with it next to the older ones, which
//! stay and keep being opened here. `tests/fixtures/client-v2` (schema 2, written by
//! [`write_client_v2_fixture`]) is Alice's phone, whose account also has a laptop: device
//! lists, and a message the laptop sent among the phone's history.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tidings_client::{
    Client, ClientError, Direction,
    store::{STORE_FILE, StoreError, schema},
};

use crate::common::{texts, two_friends};

/// The conversation in the fixture, in order, as Alice sees it.
const CONVERSATION: [(Direction, &str); 3] = [
    (Direction::Outgoing, "hello bob"),
    (Direction::Outgoing, "how are you?"),
    (Direction::Incoming, "fine, thanks"),
];

/// The conversation in the schema-2 fixture, as Alice's phone shows it: one message from
/// her laptop among them.
const CONVERSATION_V2: [(Direction, &str); 3] = [
    (Direction::Incoming, "hi Alice"),
    (Direction::Outgoing, "typed on the laptop"),
    (Direction::Outgoing, "typed on the phone"),
];

fn fixture_dir() -> PathBuf {
    fixture_dir_of(1)
}

fn fixture_dir_of(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/client-v{version}"))
}

/// A copy of the fixture in a temp dir (the committed files stay untouched), made
/// owner-only again, as git does not keep that.
fn copy_fixture() -> tempfile::TempDir {
    copy_fixture_of(1)
}

fn copy_fixture_of(version: u32) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir_of(version)).unwrap() {
        let entry = entry.unwrap();
        let to = temp.path().join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    temp
}

/// The version `client.redb` in `dir` records (no client may have it open).
fn recorded(dir: &Path) -> Option<u32> {
    let meta: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let db = Database::builder()
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .open(dir.join(STORE_FILE))
        .unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(meta).unwrap();
    let value = table.get(schema::META_SCHEMA_VERSION).unwrap()?;
    Some(schema::decode(value.value()).unwrap())
}

/// Writes the fixture. Run it only with the release the fixture stands for:
/// `cargo nextest run -p tidings-client --test delivery --run-ignored only write_client_fixture`
#[tokio::test]
#[ignore = "writes the committed fixture tests/fixtures/client-v1"]
async fn write_client_fixture() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let mut alice_session = alice.connect().await;
    for (_, text) in &CONVERSATION[..2] {
        alice_session.send_text("bob", text).await.unwrap();
    }
    alice_session.close().await;
    let mut bob_session = bob.connect().await;
    let events = bob_session.sync(Duration::from_secs(10)).await.unwrap();
    assert_eq!(texts(&events), ["hello bob", "how are you?"]);
    bob_session
        .send_text("alice", CONVERSATION[2].1)
        .await
        .unwrap();
    bob_session.close().await;
    let events = alice.sync(Duration::from_secs(10)).await;
    assert!(texts(&events).contains(&CONVERSATION[2].1.to_string()));

    let path = fixture_dir();
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    let from = alice.dir.path().to_path_buf();
    drop(alice.client);
    for file in [tidings_client::KEY_FILE, STORE_FILE] {
        std::fs::copy(from.join(file), path.join(file)).unwrap();
    }
    // Small enough to commit: compacting keeps the data, the free pages go.
    let mut db = Database::builder()
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .open(path.join(STORE_FILE))
        .unwrap();
    db.compact().unwrap();
    relay.shutdown().await;
}

/// Writes the schema-2 fixture: Alice's phone, whose account has a laptop too.
/// `cargo nextest run -p tidings-client --test delivery --run-ignored only write_client_v2_fixture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the committed fixture tests/fixtures/client-v2"]
async fn write_client_v2_fixture() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let laptop = alice.another_device(&relay).await;
    laptop.befriend("bob", &bob);
    let mut bob_session = bob.connect().await;
    bob_session
        .send_text("alice", CONVERSATION_V2[0].1)
        .await
        .unwrap();
    bob_session.close().await;
    alice.sync(Duration::from_secs(5)).await;
    let mut on_laptop = laptop.connect().await;
    on_laptop
        .send_text("bob", CONVERSATION_V2[1].1)
        .await
        .unwrap();
    on_laptop.close().await;
    alice.sync(Duration::from_secs(5)).await;
    let mut phone = alice.connect().await;
    phone.send_text("bob", CONVERSATION_V2[2].1).await.unwrap();
    phone.close().await;
    bob.sync(Duration::from_secs(5)).await;
    alice.sync(Duration::from_secs(5)).await;

    let path = fixture_dir_of(2);
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    let from = alice.dir.path().to_path_buf();
    drop(alice.client);
    for file in [tidings_client::KEY_FILE, STORE_FILE] {
        std::fs::copy(from.join(file), path.join(file)).unwrap();
    }
    let mut db = Database::builder()
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .open(path.join(STORE_FILE))
        .unwrap();
    db.compact().unwrap();
    relay.shutdown().await;
}

#[test]
fn a_schema_2_client_dir_opens_with_its_devices_and_history() {
    let temp = copy_fixture_of(2);
    assert_eq!(recorded(temp.path()), Some(2));
    let holds = |text: &str| {
        let bytes = std::fs::read(temp.path().join(STORE_FILE)).unwrap();
        bytes
            .windows(text.len())
            .any(|window| window == text.as_bytes())
    };
    assert!(
        CONVERSATION_V2.iter().all(|(_, text)| holds(text)),
        "written in plain"
    );
    let client = Client::open(temp.path(), None).unwrap();
    let history: Vec<(Direction, String)> = client
        .history("bob")
        .unwrap()
        .into_iter()
        .map(|message| (message.direction, message.text))
        .collect();
    let expected: Vec<(Direction, String)> = CONVERSATION_V2
        .iter()
        .map(|(direction, text)| (*direction, text.to_string()))
        .collect();
    assert_eq!(history, expected);
    let own = client
        .store()
        .device_list(&client.user_id())
        .unwrap()
        .unwrap();
    assert_eq!(own.list.devices.len(), 2, "the phone knows of the laptop");
    let bob = client.resolve("bob").unwrap();
    assert!(client.store().device_list(&bob).unwrap().is_some());
    drop(client);
    assert_eq!(recorded(temp.path()), Some(schema::current()));
    // Sealed at rest on opening: no text is left in the file, not even in its free pages.
    for (_, text) in CONVERSATION_V2 {
        assert!(!holds(text), "{text:?} is still in the file");
    }
    let client = Client::open(temp.path(), None).unwrap();
    assert_eq!(client.history("bob").unwrap().len(), CONVERSATION_V2.len());
}

#[test]
fn a_first_release_client_dir_opens_with_its_contact_and_history() {
    let temp = copy_fixture();
    assert_eq!(
        recorded(temp.path()),
        None,
        "the fixture predates recorded schemas"
    );
    let client = Client::open(temp.path(), None).unwrap();
    let contacts: Vec<String> = client
        .store()
        .contacts()
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(contacts, ["bob"]);
    let history: Vec<(Direction, String)> = client
        .history("bob")
        .unwrap()
        .into_iter()
        .map(|message| (message.direction, message.text))
        .collect();
    let expected: Vec<(Direction, String)> = CONVERSATION
        .iter()
        .map(|(direction, text)| (*direction, text.to_string()))
        .collect();
    assert_eq!(history, expected);
    drop(client);
    assert_eq!(recorded(temp.path()), Some(schema::current()));
}

#[test]
fn a_first_release_client_dir_migrates_to_device_lists_keeping_its_sessions() {
    let temp = copy_fixture();
    let user_devices: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("user_devices");
    let sessions: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");
    let count = |table: TableDefinition<&[u8; 32], &[u8]>| {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .open(temp.path().join(STORE_FILE))
            .unwrap();
        let txn = db.begin_read().unwrap();
        txn.open_table(table).unwrap().len().unwrap()
    };
    {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .open(temp.path().join(STORE_FILE))
            .unwrap();
        let txn = db.begin_read().unwrap();
        assert_eq!(txn.open_table(user_devices).unwrap().len().unwrap(), 1);
    }
    let before = count(sessions);
    assert!(
        before > 0,
        "the fixture has an Olm session with Bob's device"
    );

    let client = Client::open(temp.path(), None).unwrap();
    let bob = client.resolve("bob").unwrap();
    // No list is trusted from version 1's mapping: Bob's is fetched and verified on use.
    assert_eq!(client.store().device_list(&bob).unwrap(), None);
    assert!(client.store().pending(16).unwrap().is_empty());
    drop(client);
    assert_eq!(recorded(temp.path()), Some(schema::current()));
    assert_eq!(
        count(sessions),
        before,
        "Olm sessions stay, per peer device"
    );
    let db = Database::builder()
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .open(temp.path().join(STORE_FILE))
        .unwrap();
    let txn = db.begin_read().unwrap();
    assert!(
        txn.open_table(user_devices).is_err(),
        "the one-device mapping is gone"
    );
}

#[test]
fn a_new_client_store_records_the_current_schema() {
    let temp = tempfile::tempdir().unwrap();
    drop(Client::init(temp.path(), None).unwrap());
    assert_eq!(recorded(temp.path()), Some(schema::current()));
}

#[test]
fn a_client_dir_of_a_newer_release_is_refused_with_both_versions() {
    let temp = copy_fixture();
    let newer = schema::current() + 1;
    let client = Client::open(temp.path(), None).unwrap();
    client
        .store()
        .set_meta(schema::META_SCHEMA_VERSION, &newer.to_be_bytes())
        .unwrap();
    drop(client);

    let Err(error) = Client::open(temp.path(), None) else {
        panic!("a client store of a newer schema was opened");
    };
    assert!(
        matches!(
            &error,
            ClientError::Store(StoreError::Storage(
                tidings_protocol::store::StoreError::NewerSchema { file, found, known }
            )) if *file == STORE_FILE && *found == newer && *known == schema::current()
        ),
        "{error}"
    );
    assert_eq!(recorded(temp.path()), Some(newer), "refused before writing");

    // The `tidings` command line says so in words.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--data-dir")
        .arg(temp.path())
        .args(["contact", "list"])
        .env_remove("TIDINGS_PASSPHRASE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "this data dir was written by a newer Tidings (schema {newer}); this build knows up to {}",
            schema::current()
        )),
        "{stderr}"
    );
}
