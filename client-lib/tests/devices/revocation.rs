//! A device removed from its account's list: senders stop encrypting to it, it gets nothing
//! new, and the Megolm sessions of its groups rotate.

use std::time::Duration;

use tidings_client::{
    ClientError, KEY_FILE, MessageStatus, calls::PublishDeviceList, connection::Connection,
    net::Network,
};
use tidings_keys::Identity;
use tidings_protocol::{DeviceList, ErrorCode};

use crate::common::{RelayDir, TestUser, dial_addr, texts};

const WINDOW: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_gets_nothing_new_and_the_group_key_rotates() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let laptop = alice.another_device(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let bob_identity = Identity::load(&bob.dir.path().join(KEY_FILE), None).unwrap();

    let mut bob_session = bob.connect().await;
    let group = bob_session.create_group("pair", &["alice"]).await.unwrap();
    for device in [&alice, &laptop] {
        device.sync(WINDOW).await;
    }
    bob_session
        .send_text("alice", "direct before")
        .await
        .unwrap();
    bob_session.send_text("pair", "group before").await.unwrap();
    for device in [&alice, &laptop] {
        let got = texts(&device.sync(WINDOW).await);
        assert!(got.contains(&"direct before".to_string()), "{got:?}");
        assert!(got.contains(&"group before".to_string()), "{got:?}");
    }
    let store = bob.client.store();
    let key_before = store
        .plan_group_key(&bob_identity, &group)
        .unwrap()
        .unwrap()
        .session_key;

    // On her phone, Alice removes the laptop: a new list without it (what `tidings device
    // remove` publishes).
    let phone = Identity::load(&alice.dir.path().join(KEY_FILE), None).unwrap();
    let held = alice
        .client
        .store()
        .device_list(&phone.user_id())
        .unwrap()
        .unwrap();
    assert_eq!(held.list.devices.len(), 2, "the phone knows of the laptop");
    let kept = held
        .list
        .devices
        .iter()
        .filter(|entry| entry.device == phone.device_id())
        .cloned()
        .collect();
    let smaller = phone
        .sign_device_list(DeviceList::new(phone.user_id(), held.list.version + 1, kept).unwrap())
        .unwrap();
    let keypair =
        libp2p::identity::Keypair::ed25519_from_bytes(phone.device_key().to_bytes()).unwrap();
    let network = Network::start(keypair).unwrap();
    let peer = network.dial(dial_addr(&relay)).await.unwrap();
    let connection = Connection::open(&network, peer).await.unwrap();
    let published = connection
        .call(PublishDeviceList(smaller.clone()))
        .await
        .unwrap();
    assert_eq!(published, Some(smaller.clone()));

    // Bob's next message: the relay refuses the laptop's copy, Bob's client takes the new
    // list, the phone's copy counts: ✓.
    let after = bob_session
        .send_text("alice", "direct after")
        .await
        .unwrap();
    assert_eq!(after.status, MessageStatus::Sent);
    assert_eq!(
        store.device_list(&phone.user_id()).unwrap(),
        Some(smaller),
        "Bob's client uses the list without the laptop"
    );
    // The group message goes under a new session whose key the laptop never gets.
    let group_after = bob_session.send_text("pair", "group after").await.unwrap();
    assert_eq!(group_after.status, MessageStatus::Sent);
    let key_after = store
        .plan_group_key(&bob_identity, &group)
        .unwrap()
        .unwrap()
        .session_key;
    assert_ne!(key_after, key_before, "the group session rotated");

    let got = texts(&alice.sync(WINDOW).await);
    assert!(got.contains(&"direct after".to_string()), "{got:?}");
    assert!(got.contains(&"group after".to_string()), "{got:?}");
    // The laptop can fetch nothing any more.
    let refused = match laptop.client.connect().await {
        Err(error) => error,
        Ok(mut session) => session.subscribe().await.unwrap_err(),
    };
    assert!(
        matches!(
            &refused,
            ClientError::Refused(answer)
                if answer.code == ErrorCode::DeviceRevoked
        ),
        "{refused:?}"
    );
    relay.shutdown().await;
}
