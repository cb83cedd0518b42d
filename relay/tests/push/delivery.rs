//! What reaches the push service and when: one push per burst for an offline device, with
//! only the count inside (decrypted by `ece`), signed by the relay's VAPID key; nothing for a
//! subscribed device or for receipts and typing; entries during the interval folded into
//! one later push.

use std::time::Duration;

use tidings_protocol::{
    Kind,
    client::{Request, Response},
    presence::TypingBody,
    push::PushNotice,
};

use crate::{
    CONTACT,
    common::RawDevice,
    offline_subscriber, push_relay,
    receiver::{Receiver, check_vapid},
    send_all,
};

#[tokio::test]
async fn an_offline_device_gets_one_push_per_burst_carrying_only_the_count() {
    let receiver = Receiver::start().await;
    let relay = push_relay(|_| {}).await;
    let (bob, subscriber, vapid_key) = offline_subscriber(&relay, &receiver, "/bob").await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, bob, Kind::Message, "secret words", 5).await;
    let pushes = receiver.wait_for("/bob", 1, Duration::from_secs(5)).await;
    // Past the interval: still one push.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received("/bob").len(), 1, "one push for the burst");
    let push = &pushes[0];

    let plain = subscriber.decrypt(&push.body);
    assert_eq!(
        plain,
        PushNotice::new_messages(5).to_json(),
        "only the count"
    );
    assert_eq!(subscriber.notice(push).count, 5);
    let sender = alice.address().user;
    for needle in [
        b"secret words".as_slice(),
        sender.as_bytes().as_slice(),
        sender.to_string().as_bytes(),
    ] {
        for haystack in [&plain, &push.body] {
            assert!(
                !haystack.windows(needle.len()).any(|w| w == needle),
                "the push holds message bytes or the sender's id"
            );
        }
    }

    assert_eq!(push.header("ttl").as_deref(), Some("86400"));
    assert_eq!(push.header("urgency").as_deref(), Some("high"));
    assert_eq!(
        push.header("content-encoding").as_deref(),
        Some("aes128gcm")
    );
    let origin = format!("http://{}", receiver.address);
    check_vapid(push, &vapid_key, &origin, CONTACT);

    let metrics = &relay.relay.metrics().push;
    assert_eq!(metrics.sent_total(), 1);
    assert_eq!(
        metrics.coalesced_total(),
        4,
        "four entries rode on the first"
    );
}

#[tokio::test]
async fn a_subscribed_device_is_not_pushed() {
    let receiver = Receiver::start().await;
    let relay = push_relay(|_| {}).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::registered(&address).await;
    let subscriber = receiver.subscription("/bob");
    crate::set_push(&mut bob, Some(subscriber.subscription.clone()))
        .await
        .unwrap();
    assert!(bob.drain().await.is_empty());
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, bob.address(), Kind::Message, "hi", 3).await;
    let mut delivered = 0;
    while delivered < 3 {
        if let Some(tidings_protocol::client::RelayFrame::Deliver { items }) = bob.read().await {
            delivered += items.len();
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver.received("/bob").is_empty(),
        "no push while subscribed"
    );
    assert_eq!(relay.relay.metrics().push.sent_total(), 0);
}

#[tokio::test]
async fn receipts_and_typing_wake_nobody() {
    let receiver = Receiver::start().await;
    let relay = push_relay(|_| {}).await;
    let (bob, subscriber, _) = offline_subscriber(&relay, &receiver, "/bob").await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, bob, Kind::Receipt, "read", 3).await;
    send_all(&mut alice, bob, Kind::KeyShare, "key", 1).await;
    let mut notice = alice.envelope_to(bob, &TypingBody { typing: true }.encode());
    notice.kind = Kind::Typing;
    notice.sent_at_ms = tidings_protocol::now_ms();
    let typing = notice.sign(&alice.device);
    let typed = alice.request(Request::Ephemeral { envelope: typing }).await;
    assert!(
        matches!(typed, Ok(Response::EphemeralPassed { .. })),
        "{typed:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver.received("/bob").is_empty(),
        "receipts and typing are not pushed"
    );

    // They were not counted either: the first message's push says one.
    send_all(&mut alice, bob, Kind::Message, "hello", 1).await;
    let pushes = receiver.wait_for("/bob", 1, Duration::from_secs(5)).await;
    assert_eq!(subscriber.notice(&pushes[0]).count, 1);
}

#[tokio::test]
async fn messages_during_the_interval_are_folded_into_one_later_push() {
    let receiver = Receiver::start().await;
    let relay = push_relay(|config| config.push.interval_secs = 3).await;
    let (bob, subscriber, _) = offline_subscriber(&relay, &receiver, "/bob").await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, bob, Kind::Message, "one", 1).await;
    let first = receiver.wait_for("/bob", 1, Duration::from_secs(5)).await;
    for n in 0..3 {
        send_all(&mut alice, bob, Kind::Message, &format!("more {n}"), 1).await;
    }
    let pushes = receiver.wait_for("/bob", 2, Duration::from_secs(8)).await;
    assert_eq!(subscriber.notice(&first[0]).count, 1);
    assert_eq!(
        subscriber.notice(&pushes[1]).count,
        3,
        "the interval's messages, once"
    );
    let gap = pushes[1].at - pushes[0].at;
    assert!(
        gap >= Duration::from_millis(2900),
        "pushed again after {gap:?}"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(receiver.received("/bob").len(), 2);
}
