//! Subscriptions over time: a device that comes online before the interval ends is not
//! pushed, a subscription outlives a restart (and so does the VAPID key), and a revoked
//! device's subscription goes with it.

use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable};
use tidings_protocol::{DeviceId, Kind};
use tidings_relay::{STORE_FILE, store::tables::PUSH_SUBSCRIPTIONS};

use crate::{
    common::{RawDevice, TestRelay, metric, restart_tweaked},
    envelopes, get_push, push_config, push_relay,
    receiver::Receiver,
    send_all, set_push,
    support::{another_device, list, publish, reconnect, registered},
};

#[tokio::test]
async fn a_device_that_subscribes_before_the_interval_ends_gets_no_push() {
    let receiver = Receiver::start().await;
    let relay = push_relay(|config| config.push.interval_secs = 3).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::registered(&address).await;
    let subscriber = receiver.subscription("/bob");
    set_push(&mut bob, Some(subscriber.subscription.clone()))
        .await
        .unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, bob.address(), Kind::Message, "one", 1).await;
    receiver.wait_for("/bob", 1, Duration::from_secs(5)).await;
    // The next push is due at the end of the interval; Bob comes online first.
    send_all(&mut alice, bob.address(), Kind::Message, "two", 2).await;
    let got = bob.drain().await;
    assert_eq!(got.len(), 3, "Bob reads everything himself");
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(
        receiver.received("/bob").len(),
        1,
        "the pending push was cancelled"
    );
}

#[tokio::test]
async fn a_subscription_and_the_vapid_key_survive_a_restart() {
    let receiver = Receiver::start().await;
    let TestRelay { dir, relay } = push_relay(|_| {}).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::registered(&address).await;
    let subscriber = receiver.subscription("/bob");
    let (_, vapid_key) = set_push(&mut bob, Some(subscriber.subscription.clone()))
        .await
        .unwrap();
    let (account, device) = (bob.account.clone(), bob.device.clone());
    drop(bob);
    relay.shutdown().await;

    let relay = restart_tweaked(dir.path(), push_config).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect_as(&address, account, device).await;
    let (held, key_now) = get_push(&mut bob).await;
    assert_eq!(held, Some(subscriber.subscription.clone()));
    assert_eq!(key_now, vapid_key, "the same VAPID key");
    let bob_address = bob.address();
    drop(bob);

    let mut alice = RawDevice::registered(&address).await;
    send_all(&mut alice, bob_address, Kind::Message, "back", 1).await;
    let pushes = receiver.wait_for("/bob", 1, Duration::from_secs(5)).await;
    assert_eq!(subscriber.notice(&pushes[0]).count, 1);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_revoked_devices_subscription_is_deleted_with_it() {
    let receiver = Receiver::start().await;
    let TestRelay { dir, relay } = push_relay(|_| {}).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut phone = RawDevice::registered(&address).await;
    let mut laptop = another_device(&address, &phone).await;
    let both = list(&phone.account, 1, &[&phone.device, &laptop.device]);
    publish(&mut phone, both).await.unwrap();
    registered(&mut laptop).await;
    let laptop_sub = receiver.subscription("/laptop");
    set_push(&mut laptop, Some(laptop_sub.subscription))
        .await
        .unwrap();
    let phone_sub = receiver.subscription("/phone");
    set_push(&mut phone, Some(phone_sub.subscription))
        .await
        .unwrap();
    let laptop_address = laptop.address();
    drop(laptop);
    let held = || metric(&relay.metrics().render(), "tidings_push_subscriptions", &[]);
    assert_eq!(held(), Some(2.0));

    let only_phone = list(&phone.account, 2, &[&phone.device]);
    publish(&mut phone, only_phone).await.unwrap();
    // Mail for the revoked laptop is refused, and nothing is pushed to it.
    let mut alice = RawDevice::registered(&address).await;
    let _ = alice
        .send(envelopes(&alice, laptop_address, Kind::Message, "late", 1))
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(receiver.received("/laptop").is_empty());
    assert_eq!(held(), Some(1.0), "the gauge forgets the revoked device");
    let phone_device = phone.address().device;
    let mut phone = reconnect(&address, &phone).await;
    assert!(
        get_push(&mut phone).await.0.is_some(),
        "the phone keeps its own"
    );
    drop(phone);
    relay.shutdown().await;

    let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(PUSH_SUBSCRIPTIONS).unwrap();
    let held: Vec<DeviceId> = table
        .iter()
        .unwrap()
        .map(|entry| DeviceId::from_bytes(*entry.unwrap().0.value()))
        .collect();
    assert_eq!(
        held,
        vec![phone_device],
        "only the phone's subscription is left"
    );
}

#[tokio::test]
async fn a_data_dir_from_before_push_gets_its_vapid_key_at_start() {
    let dir = tidings_relay::testing::RelayDir::temp(push_config).unwrap();
    let key_file = dir.path().join(tidings_relay::push::VAPID_KEY_FILE);
    assert!(key_file.exists(), "init writes it");
    std::fs::remove_file(&key_file).unwrap();

    let relay = dir.start(None).await.unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "never world-readable");
    let mut bob = RawDevice::registered(&relay.tcp_dial_addr().unwrap()).await;
    let (held, vapid_key) = get_push(&mut bob).await;
    assert_eq!(held, None);
    assert_eq!(vapid_key.len(), 65);
    assert_eq!(vapid_key[0], 0x04, "uncompressed P-256");
    drop(bob);
    relay.shutdown().await;
}

#[tokio::test]
async fn messages_a_session_took_but_never_acked_are_pushed_when_it_ends() {
    let receiver = Receiver::start().await;
    let relay = push_relay(|_| {}).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::registered(&address).await;
    let subscriber = receiver.subscription("/bob");
    set_push(&mut bob, Some(subscriber.subscription.clone()))
        .await
        .unwrap();
    assert!(bob.drain().await.is_empty(), "caught up, as a wake is");
    let mut alice = RawDevice::registered(&address).await;

    // A message reaches Bob's session while he is leaving: it is handed over, never acked.
    send_all(&mut alice, bob.address(), Kind::Message, "late", 1).await;
    send_all(&mut alice, bob.address(), Kind::Receipt, "read", 1).await;
    let mut handed = 0;
    while handed < 2 {
        if let Some(tidings_protocol::client::RelayFrame::Deliver { items }) = bob.read().await {
            handed += items.len();
        }
    }
    assert!(
        receiver.received("/bob").is_empty(),
        "no push while subscribed"
    );
    drop(bob);

    let pushes = receiver.wait_for("/bob", 1, Duration::from_secs(5)).await;
    assert_eq!(
        subscriber.notice(&pushes[0]).count,
        1,
        "the message, not the receipt"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received("/bob").len(), 1);
}
