//! Two users on one relay, both online: a message gets ✓ sent, ✓✓ delivered, then read; one
//! read-up-to marker reads a backlog.

use std::time::Duration;

use crate::common::{two_friends, wait_for};
use tidings_client::{Direction, Event, MessageStatus, store::tables::OutboxContent};
use tidings_protocol::content::Payload;

#[tokio::test]
async fn a_message_gets_sent_delivered_and_read_ticks() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;

    let mut bob_session = bob.online().await;
    let mut alice_session = alice.online().await;

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

#[tokio::test]
async fn one_read_up_to_marker_turns_a_whole_backlog_read() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let mut alice_session = alice.online().await;
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(
            alice_session
                .send_text("bob", &format!("m{n}"))
                .await
                .unwrap(),
        );
    }
    // Bob's device takes them all (its delivered receipts go out), then goes away.
    let mut bob_session = bob.connect().await;
    bob_session.sync(Duration::from_secs(2)).await.unwrap();
    let last = sent.last().unwrap().id;
    wait_for(
        &mut alice_session,
        |e| matches!(e, Event::Status { id, status: MessageStatus::Delivered, .. } if *id == last),
    )
    .await;
    drop(bob_session);

    assert_eq!(bob.client.mark_read("alice").await.unwrap(), 5);
    let queued = bob.client.store().pending(100).unwrap();
    assert_eq!(queued.len(), 1, "one marker, not one receipt per message");
    assert_eq!(
        queued[0].1.content,
        OutboxContent::Encrypted(Payload::ReadUpTo {
            group: None,
            up_to: last
        })
    );

    let mut bob_session = bob.connect().await;
    bob_session.sync(Duration::from_secs(2)).await.unwrap();
    let mut read = Vec::new();
    wait_for(&mut alice_session, |e| {
        if let Event::Status {
            id,
            status: MessageStatus::Read,
            ..
        } = e
        {
            read.push(*id);
        }
        read.len() == sent.len()
    })
    .await;
    let ids: Vec<_> = sent.iter().map(|m| m.id).collect();
    assert_eq!(read, ids, "every message turns read, oldest first");
    assert!(
        alice
            .client
            .history("bob")
            .unwrap()
            .iter()
            .all(|m| m.status == MessageStatus::Read)
    );

    // A later marker covers only what is new.
    let newer = alice_session.send_text("bob", "one more").await.unwrap();
    bob_session.sync(Duration::from_secs(2)).await.unwrap();
    assert_eq!(bob_session.mark_read("alice").await.unwrap(), 1);
    bob_session.sync(Duration::from_secs(1)).await.unwrap();
    let events = wait_for(
        &mut alice_session,
        |e| matches!(e, Event::Status { id, status: MessageStatus::Read, .. } if *id == newer.id),
    )
    .await;
    let reads = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Status {
                    status: MessageStatus::Read,
                    ..
                }
            )
        })
        .count();
    assert_eq!(reads, 1, "earlier messages are not read again: {events:?}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_next_event_that_is_cancelled_again_and_again() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let mut alice_session = alice.connect().await;
    let mut bob_session = bob.online().await;
    const COUNT: usize = 30;
    for n in 0..COUNT {
        alice_session
            .send_text("bob", &format!("m{n}"))
            .await
            .unwrap();
    }
    // A UI polls next_event inside select! with other work: every poll may be cut short,
    // whatever it was doing (storing a batch, acking, flushing receipts).
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut cut = 0u64;
    while texts.len() < COUNT && tokio::time::Instant::now() < deadline {
        let patience = Duration::from_micros(200 + (cut % 7) * 300);
        match tokio::time::timeout(patience, bob_session.next_event()).await {
            Ok(Ok(Event::Message(message))) => texts.push(message.text),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("session failed: {error}"),
            Err(_) => cut += 1,
        }
    }
    let want: Vec<String> = (0..COUNT).map(|n| format!("m{n}")).collect();
    assert_eq!(
        texts, want,
        "every message's event, once, in order ({cut} polls cut)"
    );
    assert!(cut > 0, "the test cut no poll short");
    relay.shutdown().await;
}
