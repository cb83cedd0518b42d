//! Group messages in the history a device that joins the account gets: shown in their group,
//! in order, with their authors, under the one budget shared with 1:1 messages, and once when
//! they also arrive live.

use std::time::Duration;

use tidings_client::{Direction, Event, MessageStatus, store::HistorySync};
use tidings_protocol::{UserId, now_ms};

use crate::common::{TestUser, texts, two_friends};

const WINDOW: Duration = Duration::from_secs(5);

/// The (author, direction, text) of each message of a conversation as `device` shows it.
fn shown(device: &TestUser, who: &str) -> Vec<(UserId, Direction, String)> {
    device
        .client
        .history(who)
        .unwrap()
        .into_iter()
        .map(|record| (record.peer, record.direction, record.text))
        .collect()
}

fn history_synced(events: &[Event]) -> Vec<(u32, u32)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::HistorySynced { received, total } => Some((*received, *total)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_shows_the_groups_recent_messages_in_order_with_their_authors() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let (a, b) = (alice.client.user_id(), bob.client.user_id());
    let mut phone = alice.connect().await;
    phone.create_group("team", &["bob"]).await.unwrap();
    phone.send_text("team", "alice opens").await.unwrap();
    phone.close().await;
    assert_eq!(texts(&bob.sync(WINDOW).await), ["alice opens"]);
    let mut on_bob = bob.connect().await;
    on_bob.send_text("team", "bob answers").await.unwrap();
    on_bob.close().await;
    let mut phone = alice.connect().await;
    assert_eq!(texts(&phone.sync(WINDOW).await.unwrap()), ["bob answers"]);
    phone.mark_read("team").await.unwrap();
    // Two texts of one batch share their time; the laptop shows them in the order sent.
    alice
        .client
        .queue_texts("team", vec!["alice closes".into(), "and leaves".into()])
        .await
        .unwrap();
    phone.flush().await.unwrap();
    phone.close().await;
    assert_eq!(
        texts(&bob.sync(WINDOW).await),
        ["alice closes", "and leaves"]
    );

    let laptop = alice.another_device(&relay).await;
    // The phone sees the laptop when it connects and hands it the groups and the history.
    alice.connect().await.flush().await.unwrap();
    let events = laptop.sync(WINDOW).await;
    assert_eq!(history_synced(&events), [(4, 4)], "{events:?}");
    let before = [
        (a, Direction::Outgoing, "alice opens".to_string()),
        (b, Direction::Incoming, "bob answers".to_string()),
        (a, Direction::Outgoing, "alice closes".to_string()),
        (a, Direction::Outgoing, "and leaves".to_string()),
    ];
    assert_eq!(shown(&alice, "team"), before);
    assert_eq!(shown(&laptop, "team"), before);
    let statuses: Vec<MessageStatus> = laptop
        .client
        .history("team")
        .unwrap()
        .into_iter()
        .map(|record| record.status)
        .collect();
    assert_eq!(
        statuses,
        [
            MessageStatus::Sent,
            MessageStatus::Read,
            MessageStatus::Sent,
            MessageStatus::Sent
        ]
    );
    assert!(
        laptop.client.history("bob").unwrap().is_empty(),
        "group messages stay in their group"
    );

    // What is said from now on comes after them: the laptop posts, and Bob (who learns of
    // the laptop from it) answers.
    let mut on_laptop = laptop.connect().await;
    on_laptop
        .send_text("team", "laptop joins in")
        .await
        .unwrap();
    on_laptop.close().await;
    assert_eq!(texts(&bob.sync(WINDOW).await), ["laptop joins in"]);
    let mut on_bob = bob.connect().await;
    on_bob.send_text("team", "welcome, laptop").await.unwrap();
    on_bob.close().await;
    assert_eq!(texts(&laptop.sync(WINDOW).await), ["welcome, laptop"]);
    let mut expected = before.to_vec();
    expected.push((a, Direction::Outgoing, "laptop joins in".into()));
    expected.push((b, Direction::Incoming, "welcome, laptop".into()));
    assert_eq!(shown(&laptop, "team"), expected);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_age_and_count_budget_covers_group_and_direct_messages_together() {
    /// Between the messages too old to hand over and the recent ones.
    const GAP: Duration = Duration::from_secs(4);
    let (_relay_dir, relay, alice, _bob) = two_friends().await;
    let mut phone = alice.connect().await;
    phone.create_group("team", &["bob"]).await.unwrap();
    phone.send_text("bob", "old direct").await.unwrap();
    phone.send_text("team", "old group").await.unwrap();
    let cut = now_ms();
    tokio::time::sleep(GAP).await;
    for (who, text) in [
        ("team", "group 1"),
        ("bob", "direct 2"),
        ("team", "group 2"),
    ] {
        // Apart in time, so "newest" is plain.
        tokio::time::sleep(Duration::from_millis(20)).await;
        phone.send_text(who, text).await.unwrap();
    }
    phone.close().await;
    // At most the newest two, sent since the middle of the gap: "group 1" is one too many,
    // the old ones too old, whichever conversation each is in.
    let half_gap = u64::try_from(GAP.as_millis() / 2).unwrap();
    alice
        .client
        .set_history_sync(HistorySync {
            max_age_ms: now_ms() - cut - half_gap,
            max_messages: 2,
        })
        .unwrap();

    let laptop = alice.another_device(&relay).await;
    alice.connect().await.flush().await.unwrap();
    let events = laptop.sync(WINDOW).await;
    assert_eq!(history_synced(&events), [(2, 2)], "{events:?}");
    let text_of = |who: &str| -> Vec<String> {
        shown(&laptop, who)
            .into_iter()
            .map(|(_, _, text)| text)
            .collect()
    };
    assert_eq!(text_of("bob"), ["direct 2"]);
    assert_eq!(text_of("team"), ["group 2"]);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_that_arrives_live_and_in_the_history_is_shown_once() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let mut phone = alice.connect().await;
    phone.create_group("team", &["bob"]).await.unwrap();
    phone.send_text("team", "before the laptop").await.unwrap();
    phone.close().await;
    bob.sync(WINDOW).await;

    let laptop = alice.another_device(&relay).await;
    alice.connect().await.flush().await.unwrap();
    let events = laptop.sync(WINDOW).await;
    assert_eq!(history_synced(&events), [(1, 1)], "{events:?}");
    // The laptop posts; Bob learns of it and shares his key with it, so his next message
    // reaches the laptop live.
    let mut on_laptop = laptop.connect().await;
    on_laptop.send_text("team", "laptop here").await.unwrap();
    on_laptop.close().await;
    assert_eq!(texts(&bob.sync(WINDOW).await), ["laptop here"]);
    let mut on_bob = bob.connect().await;
    on_bob.send_text("team", "to every device").await.unwrap();
    on_bob.close().await;
    assert_eq!(texts(&laptop.sync(WINDOW).await), ["to every device"]);
    alice.sync(WINDOW).await;

    // The phone hands the laptop a history again, as it does for a device it sees join: now
    // with every message the laptop already shows.
    let handed = alice
        .client
        .store()
        .queue_history(alice.client.user_id(), laptop.client.address().device)
        .unwrap();
    assert_eq!(handed, 3);
    alice.connect().await.flush().await.unwrap();
    let events = laptop.sync(WINDOW).await;
    assert_eq!(history_synced(&events), [(3, 3)], "{events:?}");
    let shown_texts: Vec<String> = shown(&laptop, "team")
        .into_iter()
        .map(|(_, _, text)| text)
        .collect();
    assert_eq!(
        shown_texts,
        ["before the laptop", "laptop here", "to every device"]
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_the_new_device_could_not_open_is_shown_from_the_history_in_its_place() {
    let (_relay_dir, relay, alice, bob) = two_friends().await;
    let b = bob.client.user_id();
    let mut phone = alice.connect().await;
    phone.create_group("team", &["bob"]).await.unwrap();
    phone.send_text("team", "before the laptop").await.unwrap();
    phone.close().await;
    bob.sync(WINDOW).await;

    // The laptop joins; Bob, who does not know it yet, posts. His relay hands it to the
    // laptop too, which cannot open it (no group, no key yet).
    let laptop = alice.another_device(&relay).await;
    let mut on_bob = bob.connect().await;
    on_bob
        .send_text("team", "sent to the unknown")
        .await
        .unwrap();
    on_bob.close().await;
    let events = laptop.sync(WINDOW).await;
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::Undecryptable { .. })),
        "{events:?}"
    );
    // The phone, which holds it, hands the laptop a history with it.
    alice.sync(WINDOW).await;
    alice
        .client
        .store()
        .queue_history(alice.client.user_id(), laptop.client.address().device)
        .unwrap();
    alice.connect().await.flush().await.unwrap();
    laptop.sync(WINDOW).await;
    let shown: Vec<(UserId, String, MessageStatus)> = laptop
        .client
        .history("team")
        .unwrap()
        .into_iter()
        .map(|record| (record.peer, record.text, record.status))
        .collect();
    assert_eq!(
        shown,
        [
            (
                alice.client.user_id(),
                "before the laptop".into(),
                MessageStatus::Sent
            ),
            (b, "sent to the unknown".into(), MessageStatus::Received),
        ]
    );
    relay.shutdown().await;
}
