//! Two users on one relay, both online: a message gets ✓ sent, ✓✓ delivered, then read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Pair, two_friends, wait_for};
use tidings_client::{Direction, Event, MessageStatus};

#[tokio::test]
async fn a_message_gets_sent_delivered_and_read_ticks() {
    let Pair {
        relay_dir: _relay_dir,
        relay,
        alice,
        bob,
    } = two_friends().await;

    let mut bob_session = bob.connect().await;
    bob_session.subscribe().await.unwrap();
    let mut alice_session = alice.connect().await;
    alice_session.subscribe().await.unwrap();

    let sent = alice_session.send_text("bob", "hello Bob").await.unwrap();
    assert_eq!(
        sent.status,
        MessageStatus::Sent,
        "✓ once the relay committed it"
    );

    let events = wait_for(&mut bob_session, |e| matches!(e, Event::Message(_))).await;
    let Some(Event::Message(got)) = events.last() else {
        panic!("no message: {events:?}")
    };
    assert_eq!(got.text, "hello Bob");
    assert_eq!(got.id, sent.id);
    assert_eq!(got.direction, Direction::Incoming);
    assert_eq!(got.peer, alice.client.user_id());

    wait_for(&mut alice_session, |e| {
        matches!(e, Event::Status { id, status: MessageStatus::Delivered, .. } if *id == sent.id)
    })
    .await;
    assert_eq!(
        alice
            .client
            .store()
            .message(&sent.id)
            .unwrap()
            .unwrap()
            .status,
        MessageStatus::Delivered
    );

    assert_eq!(bob_session.mark_read("alice").await.unwrap(), 1);
    wait_for(
        &mut alice_session,
        |e| matches!(e, Event::Status { id, status: MessageStatus::Read, .. } if *id == sent.id),
    )
    .await;
    let history = alice.client.history("bob").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, MessageStatus::Read);
    let bob_history = bob.client.history("alice").unwrap();
    assert_eq!(bob_history[0].status, MessageStatus::Read);

    // Bob answers over the session Alice's pre-key message opened.
    let reply = bob_session.send_text("alice", "hi Alice").await.unwrap();
    assert_eq!(reply.status, MessageStatus::Sent);
    let events = wait_for(&mut alice_session, |e| matches!(e, Event::Message(_))).await;
    assert!(matches!(events.last(), Some(Event::Message(m)) if m.text == "hi Alice"));
    relay.shutdown().await;
}
