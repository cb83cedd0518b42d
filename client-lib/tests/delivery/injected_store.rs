//! A device whose key file and store the caller keeps (as the browser does in OPFS): the
//! key file as bytes, the store on an injected redb backend; it chats and reopens.

use std::time::Duration;

use crate::common::{RelayDir, TestUser, dial_addr, wait_for};
use redb::backends::FileBackend;
use tidings_client::{Client, Event, store::ClientStore};
use tidings_keys::Identity;

/// The store on a backend the caller opened (redb's file backend on a file it chose).
fn injected_store(path: &std::path::Path) -> ClientStore {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    ClientStore::open_backend(
        FileBackend::new(file).unwrap(),
        &tidings_keys::StoreKey::from_bytes([7; 32]),
    )
    .unwrap()
}

#[tokio::test]
async fn a_device_with_an_injected_store_and_key_bytes_chats_and_reopens() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let bob = TestUser::register(&relay).await;

    let dir = tempfile::tempdir().unwrap();
    let key_bytes = Identity::generate().to_file_bytes(Some("pass")).unwrap();
    let store_path = dir.path().join("elsewhere.redb");
    let open = || {
        let identity = Identity::from_file_bytes(&key_bytes, Some("pass")).unwrap();
        Client::with_store(dir.path(), identity, injected_store(&store_path))
    };
    let alice = open();
    alice.register(dial_addr(&relay), None).await.unwrap();
    alice
        .add_contact("bob", &bob.client.card(None).unwrap())
        .unwrap();
    bob.client
        .add_contact("alice", &alice.card(None).unwrap())
        .unwrap();

    let mut bob_session = bob.online().await;
    let mut alice_session = alice.connect().await.unwrap();
    alice_session.subscribe().await.unwrap();
    let sent = alice_session
        .send_text("bob", "from elsewhere")
        .await
        .unwrap();
    let events = wait_for(&mut bob_session, |e| matches!(e, Event::Message(_))).await;
    let Some(Event::Message(got)) = events.last() else {
        panic!("no message: {events:?}")
    };
    assert_eq!(got.id, sent.id);
    bob_session.send_text("alice", "got it").await.unwrap();
    wait_for(
        &mut alice_session,
        |e| matches!(e, Event::Message(m) if m.text == "got it"),
    )
    .await;
    alice_session.close().await;
    drop(alice);

    // Reopened from the same bytes and backend file: the history is there, the ratchets work.
    let alice = open();
    let texts: Vec<_> = alice
        .history("bob")
        .unwrap()
        .into_iter()
        .map(|message| message.text)
        .collect();
    assert_eq!(texts, ["from elsewhere", "got it"]);
    let mut alice_session = alice.connect().await.unwrap();
    alice_session.send_text("bob", "again").await.unwrap();
    wait_for(
        &mut bob_session,
        |e| matches!(e, Event::Message(m) if m.text == "again"),
    )
    .await;
    let _ = alice_session.sync(Duration::from_secs(1)).await;
}
