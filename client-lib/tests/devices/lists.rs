//! Device lists as the client keeps them: verified against the user they name, never rolled
//! back; a forged, altered, stale or someone else's list is refused and the held one stays.

use tempfile::TempDir;
use tidings_client::store::ClientStore;
use tidings_keys::Identity;
use tidings_protocol::{DeviceEntry, DeviceList, DeviceListError, SignedDeviceList, now_ms};

fn entry(device: &Identity) -> DeviceEntry {
    DeviceEntry {
        device: device.device_id(),
        name: "device".into(),
        added_at_ms: now_ms(),
    }
}

fn list_of(signer: &Identity, user: &Identity, version: u64) -> SignedDeviceList {
    let list = DeviceList::new(user.user_id(), version, vec![entry(user)]).unwrap();
    signer.sign_device_list(list).unwrap()
}

#[test]
fn a_forged_stale_or_foreign_list_is_refused_and_the_held_one_kept() {
    let dir = TempDir::new().unwrap();
    let store =
        ClientStore::open(dir.path(), &tidings_keys::StoreKey::from_bytes([7; 32])).unwrap();
    let alice = Identity::generate();
    let mallory = Identity::generate();
    let a = alice.user_id();

    let v1 = list_of(&alice, &alice, 1);
    store.accept_device_list(&a, v1.clone()).unwrap().unwrap();
    // The same list again changes nothing.
    store.accept_device_list(&a, v1.clone()).unwrap().unwrap();
    let v2 = list_of(&alice, &alice, 2);
    store.accept_device_list(&a, v2.clone()).unwrap().unwrap();

    // Mallory's key over a list naming Alice.
    let forged = list_of(&mallory, &alice, 3);
    assert_eq!(
        store.accept_device_list(&a, forged).unwrap(),
        Err(DeviceListError::Forged)
    );
    // Alice's real list with Mallory's device slipped in.
    let mut altered = list_of(&alice, &alice, 3);
    altered.list.devices =
        tidings_protocol::BoundedVec::new(vec![entry(&alice), entry(&mallory)]).unwrap();
    assert_eq!(
        store.accept_device_list(&a, altered).unwrap(),
        Err(DeviceListError::Forged)
    );
    // A replay of the older version.
    assert_eq!(
        store.accept_device_list(&a, v1).unwrap(),
        Err(DeviceListError::Stale { got: 1, held: 2 })
    );
    // Mallory's own, well signed list handed out as Alice's.
    assert_eq!(
        store
            .accept_device_list(&a, list_of(&mallory, &mallory, 9))
            .unwrap(),
        Err(DeviceListError::WrongUser)
    );
    assert_eq!(store.device_list(&a).unwrap(), Some(v2));
}

/// Over a real relay: Bob's client holds a newer list of Alice's than her relay hands out
/// (as after a rollback by a relay); the older one is refused, counted and reported, and
/// Bob keeps using the one he holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_list_from_the_relay_is_refused_reported_and_counted() {
    use std::time::Duration;

    use tidings_client::{Event, KEY_FILE, MessageStatus};

    use crate::common::{texts, two_friends};

    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let alice_identity = Identity::load(&alice.dir.path().join(KEY_FILE), None).unwrap();
    let newer = list_of(&alice_identity, &alice_identity, 9);
    bob.client
        .store()
        .accept_device_list(&alice.client.user_id(), newer.clone())
        .unwrap()
        .unwrap();

    let mut session = bob.connect().await;
    let sent = session
        .send_text("alice", "still reaches you")
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let events = session.sync(Duration::from_secs(2)).await.unwrap();
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::DeviceListRefused {
                user,
                reason: DeviceListError::Stale { got: 1, held: 9 },
            } if *user == alice.client.user_id()
        )),
        "{events:?}"
    );
    assert_eq!(bob.client.refused_device_lists(), 1);
    assert_eq!(
        bob.client
            .store()
            .device_list(&alice.client.user_id())
            .unwrap(),
        Some(newer)
    );
    assert_eq!(
        texts(&alice.sync(Duration::from_secs(5)).await),
        ["still reaches you"]
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_flooding_list_notices_costs_one_lookup_per_gap() {
    use tidings_client::{Event, MessageStatus};

    use crate::common::{two_friends, wait_for};

    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let (alice_id, bob_id) = (alice.client.user_id(), bob.client.user_id());
    let mut alice_session = alice.online().await;
    let mut bob_session = bob.connect().await;
    // Alice holds Bob's list (she asks for it when she first writes to him).
    bob_session.send_text("alice", "hi").await.unwrap();
    wait_for(&mut alice_session, |event| {
        matches!(event, Event::Message { .. })
    })
    .await;
    let before = alice.client.device_list_lookups();

    // Bob claims, notice after notice, ever newer lists that do not exist (versions a
    // receiver cannot check before asking).
    for version in 100..105 {
        bob.client
            .store()
            .queue_devices_changed(bob_id, version)
            .unwrap();
        bob_session.flush().await.unwrap();
        wait_for(
            &mut alice_session,
            |event| matches!(event, Event::DevicesChanged { user } if *user == bob_id),
        )
        .await;
    }
    assert_eq!(
        alice.client.device_list_lookups() - before,
        1,
        "only the first notice within the gap starts a lookup"
    );
    // The held list still counts as old: it is asked for before Alice next writes to Bob.
    let sent = alice_session.send_text("bob", "still here").await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(alice.client.device_list_lookups() - before, 2);
    assert!(alice.client.store().device_list(&bob_id).unwrap().is_some());
    assert_ne!(alice_id, bob_id);
    relay.shutdown().await;
}
