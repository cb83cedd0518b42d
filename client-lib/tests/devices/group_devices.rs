//! Groups with accounts of several devices: the Megolm key reaches every member device (the
//! sender's own other devices too), and the sending session rotates when a member's list
//! loses a device.

use std::time::Duration;

use tempfile::TempDir;
use tidings_client::{Direction, Event, store::ClientStore};
use tidings_keys::Identity;
use tidings_protocol::{
    BoundedVec, DeviceEntry, DeviceList, SignedDeviceList,
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    now_ms,
};

use crate::common::{self, TestUser, texts};

const WINDOW: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_reaches_every_device_of_every_member() {
    let relay_dir = common::RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    let carol = TestUser::register(&relay).await;
    let alice_laptop = alice.another_device(&relay).await;
    let bob_laptop = bob.another_device(&relay).await;
    alice.befriend("bob", &bob);
    alice.befriend("carol", &carol);

    let mut phone = alice.connect().await;
    phone.create_group("team", &["bob", "carol"]).await.unwrap();
    for device in [&alice_laptop, &bob, &bob_laptop, &carol] {
        device.sync(WINDOW).await;
    }
    phone.send_text("team", "hello team").await.unwrap();
    phone.close().await;
    for device in [&bob, &bob_laptop, &carol] {
        assert_eq!(texts(&device.sync(WINDOW).await), ["hello team"]);
    }
    let events = alice_laptop.sync(WINDOW).await;
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::Message(record) if record.text == "hello team" && record.direction == Direction::Outgoing
        )),
        "Alice's laptop shows her group message as hers: {events:?}"
    );

    // From Bob's laptop: every other device gets it; Bob's phone shows it as his.
    let mut on_laptop = bob_laptop.connect().await;
    on_laptop
        .send_text("team", "bob on the laptop")
        .await
        .unwrap();
    on_laptop.close().await;
    for device in [&alice, &alice_laptop, &carol] {
        assert_eq!(texts(&device.sync(WINDOW).await), ["bob on the laptop"]);
    }
    let events = bob.sync(WINDOW).await;
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::Message(record) if record.text == "bob on the laptop" && record.direction == Direction::Outgoing
        )),
        "{events:?}"
    );
    relay.shutdown().await;
}

/// A group "pair" that `bob` creates with `member` in it.
fn pair_group(bob: &Identity, member: tidings_protocol::UserId) -> SignedDescriptor {
    let members = BoundedVec::new(Descriptor::normalize(vec![
        GroupMember {
            user: bob.user_id(),
            role: Role::Admin,
        },
        GroupMember {
            user: member,
            role: Role::Member,
        },
    ]))
    .unwrap();
    SignedDescriptor::sign(
        bob.account_key(),
        Descriptor::genesis(bob.user_id(), "pair".into(), members),
    )
}

fn list(identity: &Identity, version: u64, devices: &[&Identity]) -> SignedDeviceList {
    let entries = devices
        .iter()
        .map(|device| DeviceEntry {
            device: device.device_id(),
            name: "device".into(),
            added_at_ms: now_ms(),
        })
        .collect();
    identity
        .sign_device_list(DeviceList::new(identity.user_id(), version, entries).unwrap())
        .unwrap()
}

#[test]
fn the_sending_session_rotates_when_a_member_loses_a_device() {
    let dir = TempDir::new().unwrap();
    let bob = Identity::generate();
    let store = ClientStore::open(dir.path(), bob.store_key()).unwrap();
    let alice_phone = Identity::generate();
    let alice_laptop = alice_phone.another_device();
    let a = alice_phone.user_id();
    let genesis = pair_group(&bob, a);
    let group = genesis.descriptor.group;
    assert_eq!(store.apply_group_versions(&[genesis]).unwrap(), 1);
    common::knows(&store, &bob);
    store
        .accept_device_list(&a, list(&alice_phone, 1, &[&alice_phone, &alice_laptop]))
        .unwrap()
        .unwrap();

    let first = store.plan_group_key(&bob, &group).unwrap().unwrap();
    assert_eq!(first.need, [alice_phone.address(), alice_laptop.address()]);
    store.mark_key_shared(&group, &first.need).unwrap();
    let again = store.plan_group_key(&bob, &group).unwrap().unwrap();
    assert_eq!(again.session_key, first.session_key);
    assert!(again.need.is_empty());

    // Alice removes her laptop: the next message goes under a new session, to her phone only.
    let update = store
        .accept_device_list(&a, list(&alice_phone, 2, &[&alice_phone]))
        .unwrap()
        .unwrap();
    assert_eq!(update.removed, [alice_laptop.device_id()]);
    let rotated = store.plan_group_key(&bob, &group).unwrap().unwrap();
    assert_ne!(rotated.session_key, first.session_key);
    assert_eq!(rotated.need, [alice_phone.address()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_gets_the_accounts_groups_and_takes_part() {
    let relay_dir = common::RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let mut phone = alice.connect().await;
    let group = phone.create_group("team", &["bob"]).await.unwrap();
    phone.send_text("team", "before the laptop").await.unwrap();
    phone.close().await;
    bob.sync(WINDOW).await;

    let laptop = alice.another_device(&relay).await;
    // The phone sees the laptop on its list when it connects and tells it the groups.
    alice.connect().await.flush().await.unwrap();
    let events = laptop.sync(WINDOW).await;
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::GroupChanged { group: g, .. } if *g == group)),
        "{events:?}"
    );
    assert_eq!(
        laptop
            .client
            .store()
            .group(&group)
            .unwrap()
            .unwrap()
            .descriptor
            .name,
        "team"
    );
    // The laptop posts; Bob (who now learns of it) answers, and the laptop reads that.
    let mut on_laptop = laptop.connect().await;
    on_laptop
        .send_text("team", "hello from the laptop")
        .await
        .unwrap();
    on_laptop.close().await;
    assert_eq!(texts(&bob.sync(WINDOW).await), ["hello from the laptop"]);
    let mut bob_session = bob.connect().await;
    bob_session
        .send_text("team", "welcome, laptop")
        .await
        .unwrap();
    bob_session.close().await;
    assert!(texts(&laptop.sync(WINDOW).await).contains(&"welcome, laptop".to_string()));
    relay.shutdown().await;
}

#[test]
fn a_member_whose_share_waits_in_the_outbox_is_not_sent_a_later_key_directly() {
    let dir = TempDir::new().unwrap();
    let bob = Identity::generate();
    let store = ClientStore::open(dir.path(), bob.store_key()).unwrap();
    let alice = Identity::generate();
    let a = alice.user_id();
    let genesis = pair_group(&bob, a);
    let group = genesis.descriptor.group;
    store.apply_group_versions(&[genesis]).unwrap();
    common::knows(&store, &bob);

    // Alice's list cannot be had: her share of the first key waits in the outbox.
    let plan = store.plan_group_key(&bob, &group).unwrap().unwrap();
    assert_eq!(plan.unlisted, [a]);
    store
        .queue_key_for_users(group, &plan.session_key, &plan.unlisted)
        .unwrap();
    assert_eq!(store.pending(8).unwrap().len(), 1);
    // Her list arrives later: no second, direct share (it would carry a later index).
    common::knows(&store, &alice);
    let again = store.plan_group_key(&bob, &group).unwrap().unwrap();
    assert_eq!(again.session_key, plan.session_key);
    assert!(again.need.is_empty(), "{:?}", again.need);
    assert!(again.unlisted.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_device_creates_and_administers_a_group() {
    let relay_dir = common::RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let laptop = alice.link_device(&relay, "laptop").await;
    let bob = TestUser::register(&relay).await;
    let carol = TestUser::register(&relay).await;
    for device in [&alice, &laptop] {
        device.befriend("bob", &bob);
        device.befriend("carol", &carol);
    }
    for member in [&bob, &carol] {
        member.befriend("alice", &alice);
    }
    assert!(!laptop.client.holds_account_key());

    // The laptop (no account key) makes the group: its device key signs, with its certificate.
    let mut on_laptop = laptop.connect().await;
    let group = on_laptop
        .create_group("laptop team", &["bob"])
        .await
        .unwrap();
    let first = laptop.client.group(&group).unwrap();
    assert!(first.device.is_some(), "signed by the laptop's device key");
    on_laptop.add_to_group(group, &["carol"]).await.unwrap();
    on_laptop.rename_group(group, "renamed").await.unwrap();
    on_laptop
        .send_text("renamed", "made on the laptop")
        .await
        .unwrap();
    on_laptop.close().await;

    for member in [&bob, &carol] {
        assert!(texts(&member.sync(WINDOW).await).contains(&"made on the laptop".to_string()));
        let held = member.client.store().group(&group).unwrap().unwrap();
        assert_eq!(held.descriptor.version, 3);
        assert_eq!(held.descriptor.name, "renamed");
    }
    // The phone holds the group as well and administers it with the account key.
    let phone_events = alice.sync(WINDOW).await;
    assert!(texts(&phone_events).contains(&"made on the laptop".to_string()));
    let mut on_phone = alice.connect().await;
    on_phone.remove_from_group(group, &["carol"]).await.unwrap();
    assert!(alice.client.group(&group).unwrap().device.is_none());
    on_phone.close().await;
    let held = bob.client.store().group(&group).unwrap().unwrap();
    assert!(held.descriptor.version <= 4);
    bob.sync(WINDOW).await;
    let held = bob.client.store().group(&group).unwrap().unwrap();
    assert_eq!(held.descriptor.version, 4);
    assert!(!held.descriptor.is_member(&carol.client.user_id()));
    relay.shutdown().await;
}
