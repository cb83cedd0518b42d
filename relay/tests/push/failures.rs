//! What the push service's answers do: 410 drops the subscription, 429 is retried after its
//! `Retry-After`, a service that never answers holds up nothing else; and what SetPush
//! refuses (private endpoints while they are not allowed, keys off the curve, push off).

use std::time::{Duration, Instant};

use tidings_protocol::{ErrorCode, Kind, push::PushSubscription};
use tidings_relay::metrics::PushFailure;

use crate::{
    common::{RawDevice, TestRelay, restart_tweaked, start_tweaked},
    eventually, get_push, offline_subscriber, push_config, push_relay,
    receiver::{Answer, Receiver},
    send_all, set_push,
};

#[tokio::test]
async fn a_gone_subscription_is_dropped() {
    let receiver = Receiver::start().await;
    receiver.answer("/gone", Answer::Status(410, None));
    let relay = push_relay(|_| {}).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::registered(&address).await;
    let subscriber = receiver.subscription("/gone");
    set_push(&mut bob, Some(subscriber.subscription.clone()))
        .await
        .unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, bob.address(), Kind::Message, "hi", 1).await;
    receiver.wait_for("/gone", 1, Duration::from_secs(5)).await;
    let metrics = &relay.relay.metrics().push;
    eventually(
        Duration::from_secs(5),
        "the subscription is dropped",
        || metrics.dropped_total() == 1,
    )
    .await;
    let (held, _) = get_push(&mut bob).await;
    assert_eq!(held, None, "GetPush answers none after a 410");

    // Nothing more is sent to it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    send_all(&mut alice, bob.address(), Kind::Message, "again", 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.received("/gone").len(), 1);
}

#[tokio::test]
async fn too_many_requests_is_retried_after_retry_after_then_delivered() {
    let receiver = Receiver::start().await;
    receiver.answer("/busy", Answer::Sequence(vec![(429, Some(1)), (201, None)]));
    let relay = push_relay(|_| {}).await;
    let (bob, subscriber, _) = offline_subscriber(&relay, &receiver, "/busy").await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, bob, Kind::Message, "hi", 2).await;
    let pushes = receiver.wait_for("/busy", 2, Duration::from_secs(6)).await;
    let waited = pushes[1].at - pushes[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert_eq!(
        subscriber.notice(&pushes[1]).count,
        2,
        "the retry carries the count"
    );
    let metrics = &relay.relay.metrics().push;
    eventually(Duration::from_secs(2), "the retry is counted sent", || {
        metrics.sent_total() == 1
    })
    .await;
    assert_eq!(metrics.failed_total(PushFailure::Status429), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.received("/busy").len(),
        2,
        "no more tries after success"
    );
}

#[tokio::test]
async fn a_hanging_push_service_slows_neither_sending_nor_other_pushes() {
    let receiver = Receiver::start().await;
    receiver.answer("/hang", Answer::Hang);
    let relay = push_relay(|config| {
        config.push.max_attempts = 1;
        config.push.timeout_secs = 5;
    })
    .await;
    let (stuck, _, _) = offline_subscriber(&relay, &receiver, "/hang").await;
    let (fine, subscriber, _) = offline_subscriber(&relay, &receiver, "/fine").await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, stuck, Kind::Message, "a", 1).await;
    let hanging = receiver.wait_for("/hang", 1, Duration::from_secs(5)).await;
    // The hanging POST is under way (for 5 s): sending and another device's push go on.
    let started = Instant::now();
    send_all(&mut alice, fine, Kind::Message, "b", 1).await;
    send_all(&mut alice, stuck, Kind::Message, "c", 1).await;
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "sending took {:?}",
        started.elapsed()
    );
    let pushes = receiver.wait_for("/fine", 1, Duration::from_secs(3)).await;
    assert!(
        pushes[0].at - hanging[0].at < Duration::from_secs(4),
        "the other push waited for the hanging one"
    );
    assert_eq!(subscriber.notice(&pushes[0]).count, 1);
    // The hanging POST ends at the timeout, counted.
    let metrics = &relay.relay.metrics().push;
    eventually(Duration::from_secs(7), "the hanging POST times out", || {
        metrics.failed_total(PushFailure::Timeout) >= 1
    })
    .await;
}

#[tokio::test]
async fn posts_beyond_max_in_flight_wait_for_a_slot() {
    let receiver = Receiver::start().await;
    receiver.answer("/hang", Answer::Hang);
    let relay = push_relay(|config| {
        config.push.max_in_flight = 1;
        config.push.max_attempts = 1;
    })
    .await;
    let (stuck, _, _) = offline_subscriber(&relay, &receiver, "/hang").await;
    let (fine, _, _) = offline_subscriber(&relay, &receiver, "/fine").await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;

    send_all(&mut alice, stuck, Kind::Message, "a", 1).await;
    let hanging = receiver.wait_for("/hang", 1, Duration::from_secs(5)).await;
    send_all(&mut alice, fine, Kind::Message, "b", 1).await;
    // The only slot is held by the hanging POST until its timeout (2 s).
    let pushes = receiver.wait_for("/fine", 1, Duration::from_secs(5)).await;
    let waited = pushes[0].at - hanging[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "a second POST ran after {waited:?}"
    );
}

#[tokio::test]
async fn private_endpoints_bad_keys_and_a_relay_without_push_are_refused() {
    let receiver = Receiver::start().await;
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::registered(&address).await;
    let good = receiver.subscription("/bob").subscription;
    let with_endpoint = |endpoint: &str| PushSubscription {
        endpoint: endpoint.into(),
        ..good.clone()
    };
    for endpoint in [
        good.endpoint.as_str(),
        "https://127.0.0.1:8443/push",
        "https://[::1]/push",
        "https://10.0.0.7/push",
        "https://169.254.169.254/latest",
        "http://push.example.com/plain",
    ] {
        let refused = set_push(&mut bob, Some(with_endpoint(endpoint)))
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Malformed, "{endpoint}");
        assert!(refused.detail.contains("endpoint"), "{endpoint}: {refused}");
    }
    let mut off_curve = with_endpoint("https://push.example.com/x");
    off_curve.p256dh = [0x04].into_iter().chain([0x01; 64]).collect();
    let refused = set_push(&mut bob, Some(off_curve)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Malformed);
    assert!(refused.detail.contains("curve"), "{refused}");
    let accepted = set_push(&mut bob, Some(with_endpoint("https://push.example.com/x"))).await;
    assert!(accepted.is_ok(), "{accepted:?}");
    let (held, _) = get_push(&mut bob).await;
    assert_eq!(
        held.map(|s| s.endpoint).as_deref(),
        Some("https://push.example.com/x")
    );

    let off = start_tweaked(|config| config.push.enabled = false, None).await;
    let mut carol = RawDevice::registered(&off.relay.tcp_dial_addr().unwrap()).await;
    let refused = set_push(&mut carol, Some(good)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable);
    assert!(refused.detail.contains("push.enabled = false"), "{refused}");
    assert_eq!(get_push(&mut carol).await, (None, Vec::new()));
}

#[tokio::test]
async fn a_stored_private_endpoint_is_refused_at_send_time_once_not_allowed() {
    let receiver = Receiver::start().await;
    let started = push_relay(|_| {}).await;
    let (bob, _, _) = offline_subscriber(&started, &receiver, "/bob").await;
    let TestRelay { dir, relay } = started;
    relay.shutdown().await;

    // The operator turns private endpoints off: the stored one is never dialed.
    let relay = restart_tweaked(dir.path(), |config| {
        push_config(config);
        config.push.allow_private_endpoints = false;
    })
    .await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    send_all(&mut alice, bob, Kind::Message, "hi", 1).await;
    let metrics = &relay.metrics().push;
    eventually(Duration::from_secs(5), "the send is refused", || {
        metrics.failed_total(PushFailure::RefusedAddress) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.received("/bob").is_empty(),
        "nothing reached 127.0.0.1"
    );
    assert_eq!(
        metrics.failed_total(PushFailure::RefusedAddress),
        1,
        "not retried"
    );
    relay.shutdown().await;
}
