//! Devices reach their relay over QUIC as well as TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::RelayDir;
use libp2p::multiaddr::Protocol;
use tidings_client::{Client, Event, MessageStatus};

#[tokio::test]
async fn a_quic_user_and_a_tcp_user_chat() {
    let mut relay_dir = RelayDir::new();
    relay_dir.config.listen = vec![
        "/ip4/127.0.0.1/tcp/0".into(),
        "/ip4/127.0.0.1/udp/0/quic-v1".into(),
    ];
    let relay = relay_dir.start().await;
    let quic = relay
        .dial_addrs()
        .into_iter()
        .find(|address| address.iter().any(|p| matches!(p, Protocol::QuicV1)))
        .expect("a QUIC listen address");
    let tcp = relay.tcp_dial_addr().unwrap();

    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = Client::init(dirs.0.path(), None).unwrap();
    alice.register(quic, None).await.unwrap();
    let bob = Client::init(dirs.1.path(), None).unwrap();
    bob.register(tcp, None).await.unwrap();
    alice.add_contact("bob", &bob.card(None).unwrap()).unwrap();

    let mut session = alice.connect().await.unwrap();
    let sent = session.send_text("bob", "over QUIC").await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let mut bob_session = bob.connect().await.unwrap();
    let events = bob_session.sync(Duration::from_secs(20)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.text == "over QUIC"))
    );
    relay.shutdown().await;
}
