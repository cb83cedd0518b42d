//! Web Push from the relay, against a push receiver on loopback: one push per burst for an
//! offline device, what it carries and how it is signed, what the push service's answers
//! do, the SSRF guard, and subscriptions across restarts and revocations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod delivery;
mod failures;
mod lifecycle;
mod receiver;
#[path = "../devices/support.rs"]
#[allow(dead_code)]
mod support;

use std::time::Duration;

use tidings_protocol::{
    Address, Envelope, EnvelopeId, ErrorAnswer, Kind, RawEnvelope, Recipient,
    client::{Request, Response},
    push::PushSubscription,
};
use tidings_relay::RelayConfig;

use common::{RawDevice, TestRelay, start_tweaked};

/// The contact the test relays sign with.
pub const CONTACT: &str = "mailto:ops@relay.test";

/// A relay that may push to the receiver on loopback, with a short interval.
pub async fn push_relay(tweak: impl FnOnce(&mut RelayConfig)) -> TestRelay {
    start_tweaked(
        |config| {
            push_config(config);
            tweak(config);
        },
        None,
    )
    .await
}

/// The push settings of the test relays.
pub fn push_config(config: &mut RelayConfig) {
    config.push.allow_private_endpoints = true;
    config.push.interval_secs = 2;
    config.push.timeout_secs = 2;
    config.push.contact = CONTACT.into();
}

/// Sets (or clears) the device's push subscription; the relay's answer.
pub async fn set_push(
    device: &mut RawDevice,
    subscription: Option<PushSubscription>,
) -> Result<(Option<PushSubscription>, Vec<u8>), ErrorAnswer> {
    let answer = device
        .request(Request::SetPush {
            subscription: subscription.map(Box::new),
        })
        .await;
    push_answer(answer)
}

/// What the relay holds for the device, and its VAPID key.
pub async fn get_push(device: &mut RawDevice) -> (Option<PushSubscription>, Vec<u8>) {
    push_answer(device.request(Request::GetPush).await).unwrap()
}

fn push_answer(
    answer: Result<Response, ErrorAnswer>,
) -> Result<(Option<PushSubscription>, Vec<u8>), ErrorAnswer> {
    match answer? {
        Response::Push {
            subscription,
            vapid_key,
        } => Ok((subscription.map(|boxed| *boxed), vapid_key)),
        other => panic!("unexpected {other:?}"),
    }
}

/// `count` envelopes of `kind` from `from` to `to`, with the bodies `"<tag> <n>"`.
pub fn envelopes(
    from: &RawDevice,
    to: Address,
    kind: Kind,
    tag: &str,
    count: usize,
) -> Vec<RawEnvelope> {
    (0..count)
        .map(|n| {
            Envelope {
                id: EnvelopeId::random(),
                sender: from.address(),
                recipient: Recipient::Direct(to),
                sent_at_ms: 1,
                kind,
                body: format!("{tag} {n}").into_bytes(),
                blobs: Default::default(),
            }
            .sign(&from.device)
        })
        .collect()
}

/// Sends `count` envelopes of `kind` to `to` in one request and checks every one was
/// accepted.
pub async fn send_all(from: &mut RawDevice, to: Address, kind: Kind, tag: &str, count: usize) {
    let batch = envelopes(from, to, kind, tag, count);
    match from.send(batch).await {
        Ok(Response::Sent { outcomes }) => {
            let outcomes = outcomes.into_vec();
            assert_eq!(outcomes.len(), count);
            assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, tidings_protocol::client::SendOutcome::Accepted)),
                "{outcomes:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// A registered device with a push subscription to `path` on `receiver`, disconnected
/// (so it is offline); the subscriber to decrypt its pushes, and the relay's VAPID key.
pub async fn offline_subscriber(
    relay: &TestRelay,
    receiver: &receiver::Receiver,
    path: &str,
) -> (Address, receiver::Subscriber, Vec<u8>) {
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut device = RawDevice::registered(&address).await;
    let subscriber = receiver.subscription(path);
    let (held, vapid_key) = set_push(&mut device, Some(subscriber.subscription.clone()))
        .await
        .unwrap();
    assert_eq!(held.as_ref(), Some(&subscriber.subscription));
    assert_eq!(vapid_key.len(), 65);
    (device.address(), subscriber, vapid_key)
}

/// Waits until `check` holds (panics after `within`).
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
