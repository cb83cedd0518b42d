//! Group chat across relays: one ciphertext per message, fanned out by the sender's relay;
//! receipts as counts; a removed member reads nothing sent afterwards.

use std::time::Duration;

use crate::common::{self, Net, TestUser, dial_addr, texts, wait_for};
use tidings_client::{
    Conversation, Event, KEY_FILE, MessageStatus, connection::Connection, connection::Push,
    net::Network,
};
use tidings_protocol::{MailboxItem, Recipient, client::Request};
use tidings_relay::metrics::BatchKind;

async fn befriend_all(users: &[(&str, &TestUser)]) {
    for (name, user) in users {
        for (other_name, other) in users {
            if name != other_name {
                user.befriend(other_name, other);
            }
        }
    }
}

/// Syncs until `count` messages of the group arrived (or fails after a while).
async fn group_texts(user: &TestUser, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "only got {got:?}");
        got.extend(texts(&user.sync(Duration::from_secs(2)).await));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_across_three_relays_reaches_everyone_once_with_receipt_counts() {
    let net = Net::start(3).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    let carol = TestUser::register(net.relay(2)).await;
    let dave = TestUser::register(net.relay(2)).await;
    befriend_all(&[
        ("alice", &alice),
        ("bob", &bob),
        ("carol", &carol),
        ("dave", &dave),
    ])
    .await;

    let mut alice_session = alice.online().await;
    let group = alice_session
        .create_group("hikers", &["bob", "carol", "dave"])
        .await
        .unwrap();
    // Dave stays offline; the others sync (and learn of the group).
    for user in [&bob, &carol] {
        user.sync(Duration::from_secs(5)).await;
    }
    // The creation itself reached each other relay in one batch.
    assert_eq!(net.relay(0).metrics().forward_batches(BatchKind::Group), 2);
    let before = net.relay(0).metrics().forward_batches(BatchKind::Group);
    let sent = alice_session
        .send_text("hikers", "meet at 8")
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(sent.group, Some(group));

    for user in [&bob, &carol, &dave] {
        let got = group_texts(user, 1).await;
        assert!(got.contains(&"meet at 8".to_string()), "{got:?}");
        let history = user
            .client
            .store()
            .history(&Conversation::Group(group))
            .unwrap();
        let copies = history.iter().filter(|m| m.id == sent.id).count();
        assert_eq!(copies, 1, "stored once");
    }
    // One batch per other relay carried the single ciphertext (plus key shares are direct).
    let group_batches = net.relay(0).metrics().forward_batches(BatchKind::Group) - before;
    assert_eq!(
        group_batches, 2,
        "one batch per other relay for one message"
    );

    // Delivered counts reach Alice; Bob reads both of her messages with one marker.
    let second = alice_session
        .send_text("hikers", "bring water")
        .await
        .unwrap();
    assert_eq!(group_texts(&bob, 1).await, vec!["bring water".to_string()]);
    let mut bob_session = bob.connect().await;
    assert_eq!(bob_session.mark_read("hikers").await.unwrap(), 2);
    wait_for(&mut alice_session, |_| {
        let first = alice.client.receipt_counts(&sent.id).unwrap();
        let second = alice.client.receipt_counts(&second.id).unwrap();
        first.delivered == 3 && first.read == 1 && second.read == 1
    })
    .await;
    let counts = alice.client.receipt_counts(&sent.id).unwrap();
    assert_eq!((counts.members, counts.delivered, counts.read), (3, 3, 1));
    let read_by: Vec<_> = alice
        .client
        .store()
        .receipts(&second.id)
        .unwrap()
        .into_iter()
        .filter(|(_, status)| *status == MessageStatus::Read)
        .map(|(user, _)| user)
        .collect();
    assert_eq!(read_by, vec![bob.client.user_id()]);

    // Members answer in the group too.
    let reply = bob_session
        .send_text("hikers", "I'll bring coffee")
        .await
        .unwrap();
    assert_eq!(reply.status, MessageStatus::Sent);
    let events = wait_for(
        &mut alice_session,
        |e| matches!(e, Event::Message(m) if m.text == "I'll bring coffee"),
    )
    .await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.group == Some(group)))
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_read_what_is_sent_afterwards() {
    let net = Net::start(3).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    let carol = TestUser::register(net.relay(2)).await;
    befriend_all(&[("alice", &alice), ("bob", &bob), ("carol", &carol)]).await;

    let mut alice_session = alice.connect().await;
    let group = alice_session
        .create_group("club", &["bob", "carol"])
        .await
        .unwrap();
    alice_session.send_text("club", "before").await.unwrap();
    assert!(group_texts(&carol, 1).await.contains(&"before".to_string()));
    assert!(group_texts(&bob, 1).await.contains(&"before".to_string()));

    // Carol keeps listening while Alice removes her and sends again.
    let mut carol_session = carol.online().await;
    alice_session
        .remove_from_group(group, &["carol"])
        .await
        .unwrap();
    // A raw view of Bob's mailbox, to get the new ciphertext's bytes.
    let identity = tidings_keys::Identity::load(&bob.dir.path().join(KEY_FILE), None).unwrap();
    let keypair =
        libp2p::identity::Keypair::ed25519_from_bytes(identity.device_key().to_bytes()).unwrap();
    let network = Network::start(keypair).unwrap();
    let peer = network.dial(dial_addr(net.relay(1))).await.unwrap();
    let mut raw_bob = Connection::open(&network, peer).await.unwrap();
    raw_bob.request(Request::Subscribe).await.unwrap();

    let after = alice_session
        .send_text("club", "after carol left")
        .await
        .unwrap();
    assert_eq!(after.status, MessageStatus::Sent);
    let secret = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Push::Deliver(items) = raw_bob.next_push().await {
                for item in items {
                    if let MailboxItem::Envelope(raw) = item.item
                        && let Ok(envelope) = raw.open()
                        && envelope.id == after.id
                    {
                        return (envelope, raw);
                    }
                }
            }
        }
    })
    .await
    .expect("Bob's relay got the message");
    assert_eq!(secret.0.recipient, Recipient::Group(group));

    // Carol's relay does not hand it to her...
    let events = common::events_for(&mut carol_session, Duration::from_secs(2)).await;
    assert!(!texts(&events).contains(&"after carol left".to_string()));
    // ...and even with the ciphertext in hand, her device cannot open it.
    let carol_identity =
        tidings_keys::Identity::load(&carol.dir.path().join(KEY_FILE), None).unwrap();
    let opened = carol
        .client
        .store()
        .receive(&carol_identity, &[secret], &[])
        .unwrap();
    assert!(texts(&opened.events).is_empty(), "{:?}", opened.events);
    let carol_history = carol
        .client
        .store()
        .history(&Conversation::Group(group))
        .unwrap();
    assert!(carol_history.iter().all(|m| m.text != "after carol left"));
    // Bob reads it.
    assert!(
        group_texts(&bob, 1)
            .await
            .contains(&"after carol left".to_string())
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_full_mailbox_is_reported_to_the_sender_and_the_others_still_get_it() {
    let net = Net::start_with(1, |config| config.limits.mailbox_max_envelopes = 8).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(0)).await;
    let carol = TestUser::register(net.relay(0)).await;
    befriend_all(&[("alice", &alice), ("bob", &bob), ("carol", &carol)]).await;

    let mut alice_session = alice.connect().await;
    let group = alice_session
        .create_group("crew", &["bob", "carol"])
        .await
        .unwrap();
    alice_session.send_text("crew", "first").await.unwrap();
    // Carol stays offline while Bob fills her mailbox with 1:1 messages.
    let mut bob_session = bob.connect().await;
    let mut refused = false;
    for n in 0..10 {
        let sent = bob_session
            .send_text("carol", &format!("x{n}"))
            .await
            .unwrap();
        if let MessageStatus::Failed(reason) = &sent.status {
            assert!(reason.contains("quota_exceeded"), "{reason}");
            refused = true;
            break;
        }
    }
    assert!(refused, "Carol's mailbox never filled up");

    alice_session.subscribe().await.unwrap();
    let second = alice_session.send_text("crew", "second").await.unwrap();
    assert_eq!(
        second.status,
        MessageStatus::Sent,
        "one full mailbox does not block the group"
    );
    wait_for(&mut alice_session, |_| {
        alice.client.receipt_counts(&second.id).unwrap().failed == 1
    })
    .await;
    let carol_id = carol.client.user_id();
    let receipts = alice.client.store().receipts(&second.id).unwrap();
    assert!(
        receipts
            .iter()
            .any(|(user, status)| *user == carol_id && matches!(status, MessageStatus::Failed(_))),
        "{receipts:?}"
    );
    // Bob still gets it.
    let got = group_texts(&bob, 2).await;
    assert!(got.contains(&"second".to_string()), "{got:?}");
    assert_eq!(
        alice
            .client
            .store()
            .group(&group)
            .unwrap()
            .unwrap()
            .descriptor
            .members
            .len(),
        3
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_relay_is_down_gets_the_key_once_it_is_back() {
    let mut net = Net::start(2).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    befriend_all(&[("alice", &alice), ("bob", &bob)]).await;

    let mut alice_session = alice.connect().await;
    alice_session.create_group("pair", &["bob"]).await.unwrap();
    bob.sync(Duration::from_secs(5)).await;

    // Bob's relay is down when Alice first sends: his keys cannot be claimed, so the key
    // share waits in her outbox while the messages themselves go out.
    net.stop(1).await;
    let texts: Vec<String> = (1..=6)
        .map(|n| format!("while you were away {n}"))
        .collect();
    for text in &texts {
        let sent = alice_session.send_text("pair", text).await.unwrap();
        assert_eq!(sent.status, MessageStatus::Sent);
    }
    let pending = alice.client.store().pending(16).unwrap();
    assert!(
        pending
            .iter()
            .any(|(_, entry)| entry.to == Conversation::Direct(bob.client.user_id())),
        "the key share is queued: {pending:?}"
    );

    // Alice keeps listening (nothing else happens on her side); her session retries.
    alice_session.subscribe().await.unwrap();
    let listening = tokio::spawn(async move { while alice_session.next_event().await.is_ok() {} });
    net.restart(1).await;
    // They reach Bob before their key and wait; once it comes they are shown in the order
    // Alice wrote them.
    let got = group_texts(&bob, texts.len()).await;
    assert_eq!(got, texts);
    listening.abort();
    net.shutdown().await;
}

/// Alice and Bob on one relay, Carol on another, all contacts of each other.
async fn alice_and_bob_then_carol_elsewhere() -> (Net, TestUser, TestUser, TestUser) {
    let net = Net::start(2).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(0)).await;
    let carol = TestUser::register(net.relay(1)).await;
    befriend_all(&[("alice", &alice), ("bob", &bob), ("carol", &carol)]).await;
    (net, alice, bob, carol)
}

/// Carol joins at version 3 and never saw versions 1 and 2: her device fetches them from her
/// relay and checks the whole chain before taking the change that adds her, then reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_later_fetches_the_versions_she_missed_and_reads() {
    let (_net, alice, _bob, carol) = alice_and_bob_then_carol_elsewhere().await;

    let mut alice_session = alice.online().await;
    let group = alice_session.create_group("late", &["bob"]).await.unwrap();
    alice_session.rename_group(group, "later").await.unwrap();
    alice_session.add_to_group(group, &["carol"]).await.unwrap();
    alice_session
        .send_text("later", "welcome carol")
        .await
        .unwrap();

    let got = group_texts(&carol, 1).await;
    assert_eq!(got, ["welcome carol"]);
    let known = carol.client.store().group(&group).unwrap().unwrap();
    assert_eq!(known.descriptor.version, 3);
    assert_eq!(known.descriptor.name, "later");
}

/// A long chain reaches a relay where the group's first member arrives only at version 22:
/// the relay takes the first chunks of versions (with no member of its own in them) because
/// it asked the sending relay for them, then the member's device checks the whole chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chain_reaches_a_relay_whose_first_member_joins_late() {
    let (_net, alice, _bob, carol) = alice_and_bob_then_carol_elsewhere().await;

    let mut alice_session = alice.online().await;
    let group = alice_session.create_group("long", &["bob"]).await.unwrap();
    for round in 0..20 {
        alice_session
            .rename_group(group, &format!("long {round}"))
            .await
            .unwrap();
    }
    alice_session.add_to_group(group, &["carol"]).await.unwrap();
    alice_session
        .send_text("long 19", "welcome, carol")
        .await
        .unwrap();

    let got = group_texts(&carol, 1).await;
    assert_eq!(got, ["welcome, carol"]);
    let known = carol.client.store().group(&group).unwrap().unwrap();
    assert_eq!(known.descriptor.version, 22);
}
