//! Push from the device's side, through a real relay: the subscription set, shown and
//! cleared (library and CLI), refused when malformed or pointing where the relay may not
//! push, and `wake` receiving what waits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    RelayDir, TestUser,
    cli::{ok, tidings},
    texts,
};
use tidings_client::ClientError;
use tidings_protocol::{ErrorCode, push::PushSubscription};

/// The generator point of P-256, uncompressed: a valid public key for a subscription.
const P256_GENERATOR: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}

fn subscription(endpoint: &str) -> PushSubscription {
    PushSubscription {
        endpoint: endpoint.into(),
        p256dh: hex(P256_GENERATOR),
        auth: vec![9; 16],
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_set_shown_and_cleared_from_the_command_line() {
    let relay_dir = RelayDir::with(|config| config.push.allow_private_endpoints = true);
    let relay = relay_dir.start().await;
    let user = TestUser::register(&relay).await;
    let dir = user.dir.path();

    assert!(ok(dir, &["push", "show"]).contains("endpoint: none"));
    let endpoint = "http://127.0.0.1:9/push/phone";
    let p256dh = base64url(&hex(P256_GENERATOR));
    let auth = base64url(&[9; 16]);
    let set = ok(dir, &["push", "set", endpoint, &p256dh, &auth]);
    assert!(set.contains(&format!("endpoint: {endpoint}")), "{set}");
    let shown = ok(dir, &["push", "show"]);
    assert!(shown.contains(&format!("p256dh:   {p256dh}")), "{shown}");
    let vapid = shown
        .lines()
        .find_map(|line| line.strip_prefix("relay VAPID key: "))
        .unwrap();
    let state = user.client.push_state().await.unwrap();
    assert_eq!(vapid, base64url(&state.vapid_key));
    assert_eq!(state.vapid_key.len(), 65);
    assert_eq!(state.subscription, Some(subscription(endpoint)));

    assert!(ok(dir, &["push", "clear"]).contains("endpoint: none"));
    assert_eq!(user.client.push_state().await.unwrap().subscription, None);

    // A key that is not one is refused before anything is sent.
    let bad = tidings(dir, &["push", "set", endpoint, "AAAA", &auth]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("p256dh"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_endpoints_it_may_not_push_to_and_keys_off_the_curve() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let user = TestUser::register(&relay).await;
    for endpoint in [
        "http://127.0.0.1:9/push",
        "https://127.0.0.1/push",
        "https://[::1]/p",
    ] {
        let refused = user.client.set_push(Some(subscription(endpoint))).await;
        assert!(
            matches!(&refused, Err(ClientError::Refused(answer)) if answer.code == ErrorCode::Malformed),
            "{endpoint}: {refused:?}"
        );
    }
    let mut off_curve = subscription("https://push.example/x");
    off_curve.p256dh[64] ^= 1;
    let refused = user.client.set_push(Some(off_curve)).await;
    assert!(
        matches!(&refused, Err(ClientError::Refused(answer)) if answer.code == ErrorCode::Malformed),
        "{refused:?}"
    );
    assert_eq!(user.client.push_state().await.unwrap().subscription, None);
    // A public https endpoint is taken (nothing is pushed while nothing waits).
    let state = user
        .client
        .set_push(Some(subscription("https://push.example/x")))
        .await
        .unwrap();
    assert_eq!(
        state.subscription,
        Some(subscription("https://push.example/x"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_receives_everything_waiting_then_disconnects() {
    let (_relay_dir, _relay, alice, bob) = common::two_friends().await;
    let mut session = alice.connect().await;
    for text in ["one", "two", "three"] {
        session.send_text("bob", text).await.unwrap();
    }
    session.close().await;

    let report = bob.client.wake(Duration::from_secs(10)).await.unwrap();
    assert_eq!(report.messages, 3);
    assert_eq!(texts(&report.events), vec!["one", "two", "three"]);
    // Acked: a second wake finds nothing new.
    let again = bob.client.wake(Duration::from_secs(10)).await.unwrap();
    assert_eq!(again.messages, 0, "{:?}", again.events);
    assert_eq!(bob.client.history("alice").unwrap().len(), 3);
}
