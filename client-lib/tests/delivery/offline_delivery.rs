//! Store and forward: messages for an offline user survive a relay restart and arrive in order.

use std::time::Duration;

use crate::common::{texts, two_friends, wait_for};
use tidings_client::{Event, MessageStatus};

#[tokio::test]
async fn offline_messages_survive_a_relay_restart_in_order() {
    let (mut relay_dir, relay, alice, bob) = two_friends().await;

    // Bob is offline; Alice sends three messages, each accepted (✓) by the relay.
    let mut alice_session = alice.connect().await;
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        let message = alice_session.send_text("bob", text).await.unwrap();
        assert_eq!(message.status, MessageStatus::Sent);
        sent.push(message.id);
    }
    alice_session.close().await;

    let relay = relay_dir.restart(relay).await;

    let mut bob_session = bob.connect().await;
    let events = bob_session.sync(Duration::from_secs(20)).await.unwrap();
    assert_eq!(texts(&events), ["one", "two", "three"]);
    let history = bob.client.history("alice").unwrap();
    assert_eq!(
        history.iter().map(|m| m.id).collect::<Vec<_>>(),
        sent,
        "same ids, same order"
    );

    // Alice comes back and collects the ✓✓ receipts Bob sent while she was away.
    let mut alice_session = alice.online().await;
    let mut delivered = 0;
    wait_for(&mut alice_session, |event| {
        if matches!(
            event,
            Event::Status {
                status: MessageStatus::Delivered,
                ..
            }
        ) {
            delivered += 1;
        }
        delivered == 3
    })
    .await;
    for id in &sent {
        let status = alice.client.store().message(id).unwrap().unwrap().status;
        assert_eq!(status, MessageStatus::Delivered);
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn messages_queued_while_the_relay_is_down_are_sent_later_in_order() {
    let (mut relay_dir, relay, alice, bob) = two_friends().await;
    let address = relay.listen_addrs()[0].clone();
    relay.shutdown().await;

    // The relay is down: messages wait in Alice's outbox as pending.
    for text in ["a", "b"] {
        let queued = alice.client.queue_text("bob", text).await.unwrap();
        assert_eq!(queued.status, MessageStatus::Pending);
    }
    assert!(alice.client.connect().await.is_err());

    relay_dir.config.listen = vec![address.to_string()];
    let relay = relay_dir.start().await;
    let mut alice_session = alice.connect().await;
    let report = alice_session.flush().await.unwrap();
    assert_eq!(report.sent.len(), 2);

    let mut bob_session = bob.connect().await;
    let events = bob_session.sync(Duration::from_secs(20)).await.unwrap();
    assert_eq!(texts(&events), ["a", "b"]);
    relay.shutdown().await;
}
