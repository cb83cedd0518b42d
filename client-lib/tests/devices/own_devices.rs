//! Two devices of one account on real relays: both get what Bob sends, each shows what the
//! other sent, reading on one clears the other, and contacts follow.

use std::time::Duration;

use tidings_client::{Conversation, Direction, Event, MessageStatus};

use crate::common::{Net, TestUser, texts, two_friends, wait_for_home};

const WINDOW: Duration = Duration::from_secs(5);

/// The (direction, text) pairs of a conversation as `device` shows it.
fn shown(device: &TestUser, who: &str) -> Vec<(Direction, String)> {
    device
        .client
        .history(who)
        .unwrap()
        .into_iter()
        .map(|record| (record.direction, record.text))
        .collect()
}

fn sent_by_me(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message(record) if record.direction == Direction::Outgoing => {
                Some(record.text.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_devices_get_bobs_message_and_see_what_the_other_sent() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let laptop = alice.another_device(&relay).await;
    laptop.befriend("bob", &bob);

    let mut bob_session = bob.connect().await;
    let hi = bob_session.send_text("alice", "hi Alice").await.unwrap();
    assert_eq!(hi.status, MessageStatus::Sent);
    for device in [&alice, &laptop] {
        assert_eq!(texts(&device.sync(WINDOW).await), ["hi Alice"]);
    }

    // From the phone: Bob gets it once; the laptop shows it as sent by Alice.
    let mut phone = alice.connect().await;
    let answer = phone.send_text("bob", "hi from my phone").await.unwrap();
    assert_eq!(answer.status, MessageStatus::Sent);
    phone.close().await;
    assert_eq!(texts(&bob.sync(WINDOW).await), ["hi from my phone"]);
    let events = laptop.sync(WINDOW).await;
    assert_eq!(sent_by_me(&events), ["hi from my phone"]);

    // From the laptop: the phone shows it.
    let mut on_laptop = laptop.connect().await;
    on_laptop
        .send_text("bob", "and from my laptop")
        .await
        .unwrap();
    on_laptop.close().await;
    assert_eq!(texts(&bob.sync(WINDOW).await), ["and from my laptop"]);
    let events = alice.sync(WINDOW).await;
    assert_eq!(sent_by_me(&events), ["and from my laptop"]);

    let conversation = [
        (Direction::Incoming, "hi Alice".to_string()),
        (Direction::Outgoing, "hi from my phone".to_string()),
        (Direction::Outgoing, "and from my laptop".to_string()),
    ];
    assert_eq!(shown(&alice, "bob"), conversation);
    assert_eq!(shown(&laptop, "bob"), conversation);
    // Bob's delivered receipts name the logical messages: both of Alice's devices move
    // the ticks of what either sent.
    for device in [&alice, &laptop] {
        device.sync(WINDOW).await;
        let history = device.client.history("bob").unwrap();
        assert!(
            history[1..]
                .iter()
                .all(|record| record.status.rank() >= MessageStatus::Delivered.rank()),
            "{history:?}"
        );
    }
    assert_eq!(
        bob.client.history("alice").unwrap().len(),
        3,
        "each message reached Bob once"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_on_one_device_clears_the_other() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let laptop = alice.another_device(&relay).await;
    laptop.befriend("bob", &bob);
    let mut bob_session = bob.online().await;
    for text in ["one", "two"] {
        bob_session.send_text("alice", text).await.unwrap();
    }
    for device in [&alice, &laptop] {
        assert_eq!(texts(&device.sync(WINDOW).await), ["one", "two"]);
    }

    let mut phone = alice.connect().await;
    assert_eq!(phone.mark_read("bob").await.unwrap(), 2);
    phone.close().await;
    let events = laptop.sync(WINDOW).await;
    assert!(
        events.contains(&Event::ReadElsewhere {
            conversation: Conversation::Direct(bob.client.user_id()),
            count: 2,
        }),
        "{events:?}"
    );
    let statuses: Vec<MessageStatus> = laptop
        .client
        .history("bob")
        .unwrap()
        .into_iter()
        .map(|record| record.status)
        .collect();
    assert_eq!(statuses, [MessageStatus::Read, MessageStatus::Read]);
    // Bob sees them read, once.
    let events = crate::common::wait_for(&mut bob_session, |event| {
        matches!(
            event,
            Event::Status {
                status: MessageStatus::Read,
                ..
            }
        )
    })
    .await;
    assert!(!events.is_empty());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_changes_follow_to_the_other_device() {
    let (_relay_dir, relay, alice, carol) = two_friends().await;
    let laptop = alice.another_device(&relay).await;
    // The phone learns of the laptop when it connects.
    alice.connect().await.close().await;
    let card = carol.client.card(None).unwrap();
    alice.client.remove_contact("bob").unwrap();
    alice.client.add_contact("carol", &card).unwrap();
    alice.client.rename_contact("carol", "caz").unwrap();
    alice.connect().await.flush().await.unwrap();

    let events = laptop.sync(WINDOW).await;
    assert!(events.contains(&Event::ContactsSynced), "{events:?}");
    let names: Vec<String> = laptop
        .client
        .store()
        .contacts()
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["caz"]);
    assert_eq!(
        laptop.client.resolve("caz").unwrap(),
        carol.client.user_id()
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_two_devices_talks_with_a_user_on_another_relay() {
    let net = Net::start(2).await;
    net.wait_for_dht(1).await;
    let alice = TestUser::register(net.relay(0)).await;
    let laptop = alice.another_device(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    wait_for_home(net.relay(1), &alice, net.relay(0)).await;
    wait_for_home(net.relay(0), &bob, net.relay(1)).await;
    alice.befriend("bob", &bob);
    laptop.befriend("bob", &bob);
    bob.befriend("alice", &alice);

    let mut bob_session = bob.connect().await;
    bob_session
        .send_text("alice", "across relays")
        .await
        .unwrap();
    bob_session.close().await;
    for device in [&alice, &laptop] {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while got.is_empty() && tokio::time::Instant::now() < deadline {
            got = texts(&device.sync(Duration::from_secs(2)).await);
        }
        assert_eq!(got, ["across relays"]);
    }
    let mut on_laptop = laptop.connect().await;
    on_laptop
        .send_text("bob", "back from the laptop")
        .await
        .unwrap();
    on_laptop.close().await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.is_empty() && tokio::time::Instant::now() < deadline {
        got = texts(&bob.sync(Duration::from_secs(2)).await);
    }
    assert_eq!(got, ["back from the laptop"]);
    assert_eq!(
        sent_by_me(&alice.sync(WINDOW).await),
        ["back from the laptop"]
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_starts_with_the_accounts_contacts() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let laptop = alice.another_device(&relay).await;
    assert!(laptop.client.store().contacts().unwrap().is_empty());
    // The phone sees the new device on its list when it connects, and sends it the contacts.
    let mut phone = alice.connect().await;
    phone.flush().await.unwrap();
    phone.close().await;
    let events = laptop.sync(WINDOW).await;
    assert!(events.contains(&Event::ContactsSynced), "{events:?}");
    assert_eq!(laptop.client.resolve("bob").unwrap(), bob.client.user_id());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_gets_the_recent_history_before_what_it_already_has() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let mut bob_session = bob.connect().await;
    bob_session.send_text("alice", "old news").await.unwrap();
    let mut phone = alice.connect().await;
    phone.sync(WINDOW).await.unwrap();
    phone.mark_read("bob").await.unwrap();
    phone.send_text("bob", "old answer").await.unwrap();
    phone.close().await;
    bob_session.sync(WINDOW).await.unwrap();

    let laptop = alice.another_device(&relay).await;
    laptop.befriend("bob", &bob);
    // Bob's client learns of the laptop from its first message.
    let mut on_laptop = laptop.connect().await;
    on_laptop.send_text("bob", "laptop here").await.unwrap();
    on_laptop.close().await;
    bob_session.sync(WINDOW).await.unwrap();
    bob_session.send_text("alice", "new today").await.unwrap();
    bob_session.close().await;
    assert_eq!(texts(&laptop.sync(WINDOW).await), ["new today"]);

    // The phone sees the laptop when it connects and hands it the history.
    let mut phone = alice.connect().await;
    phone.flush().await.unwrap();
    phone.close().await;
    let events = laptop.sync(WINDOW).await;
    assert!(
        events.contains(&Event::HistorySynced {
            received: 2,
            total: 2
        }),
        "{events:?}"
    );
    let shown: Vec<(Direction, String, MessageStatus)> = laptop
        .client
        .history("bob")
        .unwrap()
        .into_iter()
        .map(|record| (record.direction, record.text, record.status))
        .collect();
    assert_eq!(
        shown,
        [
            (Direction::Incoming, "old news".into(), MessageStatus::Read),
            // As the phone held it when it chose the history (Bob's receipt for it was
            // still waiting at the relay).
            (
                Direction::Outgoing,
                "old answer".into(),
                MessageStatus::Sent
            ),
            (
                Direction::Outgoing,
                "laptop here".into(),
                MessageStatus::Delivered
            ),
            (
                Direction::Incoming,
                "new today".into(),
                MessageStatus::Received
            ),
        ]
    );
    relay.shutdown().await;
}
