//! Dropped connections lose nothing and duplicate nothing.

use std::time::Duration;

use crate::common::{dial_addr, two_friends};
use tidings_client::{Event, KEY_FILE, connection::Connection, connection::Push, net::Network};
use tidings_protocol::client::{Request, Response};

/// Bob keeps dropping his connection while Alice sends; in the end he has every message
/// exactly once, in order.
#[tokio::test]
async fn a_flapping_receiver_gets_everything_once_in_order() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;

    let mut alice_session = alice.connect().await;
    let mut expected = Vec::new();
    for round in 0..5 {
        for index in 0..8 {
            let text = format!("message {round}-{index}");
            alice_session.send_text("bob", &text).await.unwrap();
            expected.push(text);
        }
        // Bob connects, takes at most a few events, and drops the connection abruptly.
        let mut bob_session = bob.online().await;
        for _ in 0..=round {
            let _ =
                tokio::time::timeout(Duration::from_millis(300), bob_session.next_event()).await;
        }
        drop(bob_session);
    }
    let mut bob_session = bob.connect().await;
    bob_session.sync(Duration::from_secs(20)).await.unwrap();
    let history: Vec<String> = bob
        .client
        .history("alice")
        .unwrap()
        .into_iter()
        .map(|message| message.text)
        .collect();
    assert_eq!(history, expected);
    relay.shutdown().await;
}

/// What the relay pushed but the device never acked comes again after reconnecting, and the
/// client's store takes each envelope once.
#[tokio::test]
async fn unacked_envelopes_are_pushed_again_and_stored_once() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let mut alice_session = alice.connect().await;
    alice_session.send_text("bob", "first").await.unwrap();
    alice_session.send_text("bob", "second").await.unwrap();

    // A bare connection as Bob's device that reads the pushes and never acks.
    let identity = tidings_keys::Identity::load(&bob.dir.path().join(KEY_FILE), None).unwrap();
    let secret = identity.device_key().to_bytes();
    let network =
        Network::start(libp2p::identity::Keypair::ed25519_from_bytes(secret).unwrap()).unwrap();
    let peer = network.dial(dial_addr(&relay)).await.unwrap();
    let mut raw = Connection::open(&network, peer).await.unwrap();
    assert!(matches!(
        raw.request(Request::Subscribe).await.unwrap(),
        Response::Subscribed {
            acked: 0,
            head: 2,
            ..
        }
    ));
    let Push::Deliver(first_push) = raw.next_push().await else {
        panic!("expected a push")
    };
    let seqs: Vec<u64> = first_push.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, [1, 2]);
    drop(raw);

    // The real client: the same two envelopes come again; each is stored once.
    let mut bob_session = bob.connect().await;
    let events = bob_session.sync(Duration::from_secs(20)).await.unwrap();
    let received = events
        .iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count();
    assert_eq!(received, 2);
    // Feeding the same envelopes to the store again yields nothing new.
    let envelopes: Vec<_> = first_push
        .iter()
        .map(|d| match &d.item {
            tidings_protocol::MailboxItem::Envelope(raw) => (raw.open().unwrap(), raw.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let again = bob
        .client
        .store()
        .receive(&identity, &envelopes, &[])
        .unwrap();
    assert!(
        again.events.is_empty(),
        "duplicates produced events: {:?}",
        again.events
    );
    assert_eq!(bob.client.history("alice").unwrap().len(), 2);
    relay.shutdown().await;
}
