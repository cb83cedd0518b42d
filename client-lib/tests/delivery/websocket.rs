//! Devices reach their relay over WebSocket (`/ws`), and over TLS the relay terminates itself
//! (`/tls/ws`) with a certificate the client is told to trust.

use std::{path::Path, time::Duration};

use crate::common::RelayDir;
use libp2p::{Multiaddr, multiaddr::Protocol};
use tidings_client::{Client, Event, MessageStatus, websocket::TRUSTED_CERTS_FILE};

/// The relay's dial address whose transport ends in `/ws`.
fn ws_addr(relay: &tidings_relay::RunningRelay) -> Multiaddr {
    relay
        .dial_addrs()
        .into_iter()
        .find(|address| address.iter().any(|p| matches!(p, Protocol::Ws(_))))
        .expect("a WebSocket listen address")
}

/// Registers two users at `address` (their data dirs prepared by `prepare`), befriends them,
/// and checks a message each way arrives.
async fn chat_over(address: Multiaddr, prepare: impl Fn(&Path)) {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    prepare(dirs.0.path());
    prepare(dirs.1.path());
    let alice = Client::init(dirs.0.path(), None).unwrap();
    alice.register(address.clone(), None).await.unwrap();
    let bob = Client::init(dirs.1.path(), None).unwrap();
    bob.register(address.clone(), None).await.unwrap();
    alice.add_contact("bob", &bob.card(None).unwrap()).unwrap();
    bob.add_contact("alice", &alice.card(None).unwrap())
        .unwrap();

    let mut session = alice.connect().await.unwrap();
    let sent = session.send_text("bob", "over a websocket").await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let mut bob_session = bob.connect().await.unwrap();
    let events = bob_session.sync(Duration::from_secs(20)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.text == "over a websocket")),
        "{events:#?}"
    );
    bob_session.send_text("alice", "and back").await.unwrap();
    let events = session.sync(Duration::from_secs(20)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.text == "and back")),
        "{events:#?}"
    );
}

#[tokio::test]
async fn two_users_of_a_websocket_only_relay_register_and_chat() {
    let relay_dir = RelayDir::with(|config| {
        config.listen = vec!["/ip4/127.0.0.1/tcp/0/ws".into()];
    });
    let relay = relay_dir.start().await;
    let address = ws_addr(&relay);
    chat_over(address, |_| {}).await;
    relay.shutdown().await;
}

/// A relay dir whose `/tls/ws` listener uses a fresh self-signed certificate for 127.0.0.1;
/// the certificate's PEM.
fn tls_relay() -> (RelayDir, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let key_pem = certified.key_pair.serialize_pem();
    let relay_dir = RelayDir::with(|config| {
        config.listen = vec!["/ip4/127.0.0.1/tcp/0/tls/ws".into()];
        config.websocket.tls_certificate = "ws-cert.pem".into();
        config.websocket.tls_key = "ws-key.pem".into();
    });
    std::fs::write(relay_dir.path().join("ws-cert.pem"), &cert_pem).unwrap();
    std::fs::write(relay_dir.path().join("ws-key.pem"), key_pem).unwrap();
    (relay_dir, cert_pem)
}

#[tokio::test]
async fn users_chat_over_tls_the_relay_terminates_with_a_trusted_self_signed_certificate() {
    let (relay_dir, cert_pem) = tls_relay();
    let relay = relay_dir.start().await;
    let address = ws_addr(&relay);
    assert!(
        address.iter().any(|p| matches!(p, Protocol::Tls)),
        "{address}"
    );
    chat_over(address, |dir| {
        std::fs::write(dir.join(TRUSTED_CERTS_FILE), &cert_pem).unwrap();
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_cannot_connect() {
    let (relay_dir, _) = tls_relay();
    let relay = relay_dir.start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::init(dir.path(), None).unwrap();
    let error = client
        .register(ws_addr(&relay), None)
        .await
        .expect_err("an untrusted certificate must fail the TLS handshake");
    assert!(
        error.to_string().contains("cannot reach the relay"),
        "{error}"
    );
    relay.shutdown().await;
}
