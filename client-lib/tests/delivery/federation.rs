//! Users on different relays: discovery through the DHT only, store and forward between
//! relays, relays going down and coming back, undeliverable envelopes, moving home.

use std::time::Duration;

use crate::common::{Net, TestUser, texts, wait_for, wait_for_home};
use tidings_client::{Event, MessageStatus};

async fn pair(net: &Net, alice_at: usize, bob_at: usize) -> (TestUser, TestUser) {
    let alice = TestUser::register(net.relay(alice_at)).await;
    let bob = TestUser::register(net.relay(bob_at)).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_different_relays_chat_through_the_dht() {
    let net = Net::start(3).await;
    let (alice, bob) = pair(&net, 0, 2).await;
    // Relay 0 was never told about Bob: it finds his home in the DHT.
    assert!(
        net.relay(0)
            .lookup_home(bob.client.user_id())
            .await
            .is_some()
    );

    let mut bob_session = bob.online().await;
    let mut alice_session = alice.online().await;
    let sent = alice_session
        .send_text("bob", "across relays")
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let events = wait_for(&mut bob_session, |e| matches!(e, Event::Message(_))).await;
    assert_eq!(texts(&events), ["across relays"]);
    wait_for(&mut alice_session, |e| {
        matches!(e, Event::Status { id, status: MessageStatus::Delivered, .. } if *id == sent.id)
    })
    .await;
    bob_session.mark_read("alice").await.unwrap();
    wait_for(
        &mut alice_session,
        |e| matches!(e, Event::Status { id, status: MessageStatus::Read, .. } if *id == sent.id),
    )
    .await;
    let reply = bob_session.send_text("alice", "and back").await.unwrap();
    assert_eq!(reply.status, MessageStatus::Sent);
    let events = wait_for(&mut alice_session, |e| matches!(e, Event::Message(_))).await;
    assert_eq!(texts(&events), ["and back"]);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_user_on_a_remote_relay_gets_everything_in_order() {
    let net = Net::start(3).await;
    let (alice, bob) = pair(&net, 0, 2).await;
    let mut alice_session = alice.connect().await;
    for index in 0..5 {
        let message = alice_session
            .send_text("bob", &format!("m{index}"))
            .await
            .unwrap();
        assert_eq!(message.status, MessageStatus::Sent);
    }
    // Give the forwarder time, then Bob comes online.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bob_session = bob.connect().await;
    let events = bob_session.sync(Duration::from_secs(20)).await.unwrap();
    assert_eq!(texts(&events), ["m0", "m1", "m2", "m3", "m4"]);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_delivers_once_a_remote_relay_is_back() {
    let mut net = Net::start(3).await;
    let (alice, bob) = pair(&net, 0, 2).await;
    let mut alice_session = alice.connect().await;
    // A first message while everything is up opens the Olm session.
    alice_session.send_text("bob", "before").await.unwrap();

    net.stop(2).await;
    for text in ["while down 1", "while down 2", "while down 3"] {
        let message = alice_session.send_text("bob", text).await.unwrap();
        assert_eq!(
            message.status,
            MessageStatus::Sent,
            "accepted into relay 0's outbox"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    net.restart(2).await;
    net.wait_for_dht(1).await;

    let mut bob_session = bob.connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "only got {got:?}");
        let events = bob_session.sync(Duration::from_secs(2)).await.unwrap();
        got.extend(texts(&events));
        bob_session = bob.connect().await;
    }
    assert_eq!(
        got,
        ["before", "while down 1", "while down 2", "while down 3"]
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_between_relays_holds_messages_until_it_heals() {
    let net = Net::start(2).await;
    let (alice, bob) = pair(&net, 0, 1).await;
    let mut alice_session = alice.connect().await;
    alice_session.send_text("bob", "before").await.unwrap();
    let mut bob_session = bob.online().await;
    wait_for(&mut bob_session, |event| matches!(event, Event::Message(_))).await;

    // Both relays refuse each other: what Alice sends is accepted by her relay and waits.
    let (a, b) = (net.relay(0), net.relay(1));
    a.network().set_blocked(b.peer_id(), true).await;
    b.network().set_blocked(a.peer_id(), true).await;
    for text in ["cut 1", "cut 2"] {
        let message = alice_session.send_text("bob", text).await.unwrap();
        assert_eq!(
            message.status,
            MessageStatus::Sent,
            "accepted into the outbox"
        );
    }
    let quiet = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(event) = tokio::time::timeout_at(quiet, bob_session.next_event()).await {
        let event = event.unwrap();
        assert!(
            !matches!(event, Event::Message(_)),
            "nothing crosses a cut link: {event:?}"
        );
    }

    a.network().set_blocked(b.peer_id(), false).await;
    b.network().set_blocked(a.peer_id(), false).await;
    let events = wait_for(
        &mut bob_session,
        |event| matches!(event, Event::Message(message) if message.text == "cut 2"),
    )
    .await;
    assert_eq!(texts(&events), ["cut 1", "cut 2"]);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_that_cannot_be_delivered_in_time_bounce_to_the_sender() {
    let mut net = Net::start_with(3, |config| config.federation.undeliverable_after_secs = 2).await;
    let (alice, bob) = pair(&net, 0, 2).await;
    let mut alice_session = alice.online().await;
    alice_session
        .send_text("bob", "opens the session")
        .await
        .unwrap();
    net.stop(2).await;
    let doomed = alice_session
        .send_text("bob", "never arrives")
        .await
        .unwrap();
    assert_eq!(doomed.status, MessageStatus::Sent);
    let events = wait_for(&mut alice_session, |e| {
        matches!(e, Event::Status { id, status: MessageStatus::Failed(_), .. } if *id == doomed.id)
    })
    .await;
    let Some(Event::Status {
        status: MessageStatus::Failed(reason),
        ..
    }) = events.last()
    else {
        panic!("no failure: {events:?}")
    };
    assert!(reason.contains("undeliverable"), "{reason}");
    drop(bob);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_home_hands_queued_messages_on_and_new_ones_follow() {
    let net = Net::start(3).await;
    let (alice, bob) = pair(&net, 0, 1).await;
    let mut alice_session = alice.connect().await;
    for text in ["queued 1", "queued 2"] {
        alice_session.send_text("bob", text).await.unwrap();
    }
    // Both wait in Bob's mailbox at relay 1 (he is offline). Now he moves to relay 2.
    let bob_session = bob.connect().await;
    bob_session.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let moved = bob
        .client
        .move_home(net.relay(2).tcp_dial_addr().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(moved.relay, net.relay(2).peer_id());
    assert!(moved.previous_told);
    wait_for_home(net.relay(0), &bob, net.relay(2)).await;

    let after = alice_session
        .send_text("bob", "after the move")
        .await
        .unwrap();
    assert_eq!(after.status, MessageStatus::Sent);
    let mut bob_session = bob.connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "only got {got:?}");
        got.extend(texts(
            &bob_session.sync(Duration::from_secs(2)).await.unwrap(),
        ));
        bob_session = bob.connect().await;
    }
    got.sort();
    assert_eq!(got, ["after the move", "queued 1", "queued 2"]);
    // Bob's history has each exactly once.
    assert_eq!(bob.client.history("alice").unwrap().len(), 3);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_a_restart_of_the_sending_relay() {
    let mut net = Net::start(3).await;
    let (alice, bob) = pair(&net, 0, 2).await;
    let mut alice_session = alice.connect().await;
    alice_session.send_text("bob", "before").await.unwrap();

    // Bob's relay is down: Alice's relay keeps the next two in its outbox, then restarts.
    net.stop(2).await;
    for text in ["queued 1", "queued 2"] {
        let message = alice_session.send_text("bob", text).await.unwrap();
        assert_eq!(message.status, MessageStatus::Sent);
    }
    alice_session.close().await;
    net.stop(0).await;
    net.restart(0).await;
    net.restart(2).await;
    net.wait_for_dht(1).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "only got {got:?}");
        let mut bob_session = bob.connect().await;
        got.extend(texts(
            &bob_session.sync(Duration::from_secs(2)).await.unwrap(),
        ));
    }
    assert_eq!(got, ["before", "queued 1", "queued 2"]);
    net.shutdown().await;
}
