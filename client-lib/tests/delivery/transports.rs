//! Devices reach their relay over QUIC as well as TCP, and many at once.

use std::time::Duration;

use crate::common::{self, RelayDir};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_devices_connecting_at_once_all_get_their_session() {
    // libp2p-stream hands a relay new streams through a one-slot queue and drops what does
    // not fit: a burst of devices must still all get through (the client reopens a stream
    // the relay closed before saying anything).
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let mut users = Vec::new();
    for _ in 0..24 {
        users.push(common::TestUser::register(&relay).await);
    }
    for round in 0..3 {
        let mut connecting = tokio::task::JoinSet::new();
        for user in &users {
            let client = user.client.clone();
            connecting.spawn(async move {
                let mut session = client.connect().await?;
                session.subscribe().await?;
                Ok::<_, tidings_client::ClientError>(session)
            });
        }
        let mut sessions = Vec::new();
        while let Some(joined) = connecting.join_next().await {
            match joined.unwrap() {
                Ok(session) => sessions.push(session),
                Err(error) => panic!("round {round}: a device got no session: {error}"),
            }
        }
        assert_eq!(sessions.len(), users.len());
        for session in sessions {
            session.close().await;
        }
    }
    relay.shutdown().await;
}
