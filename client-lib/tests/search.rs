//! Local search: messages received over real relays on loopback (1:1, group, media) are
//! found by their words, newest first, filtered by conversation and sender; deleted messages
//! are forgotten; a missing or stale index is rebuilt; the CLI highlights matches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{TestUser, cli, media::write_file, two_friends};
use redb::Database;
use tidings_client::{
    Client, Conversation, Direction, MessageRecord, MessageStatus,
    store::{SearchError, SearchQuery, Sender, tables},
};
use tidings_protocol::{EnvelopeId, now_ms};

fn query(words: &str) -> SearchQuery {
    SearchQuery {
        words: words.into(),
        within: None,
        from: None,
        limit: 20,
    }
}

/// The texts (or file names) of what `query` finds, in order.
fn found(client: &Client, query: &SearchQuery) -> Vec<String> {
    client
        .store()
        .search(query)
        .unwrap()
        .records
        .iter()
        .map(|record| match &record.media {
            Some(media) => media.name.clone(),
            None => record.text.clone(),
        })
        .collect()
}

/// Syncs `user` until `conversation` holds `count` incoming messages.
async fn receive(user: &TestUser, conversation: Conversation, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let incoming = user
            .client
            .store()
            .history(&conversation)
            .unwrap()
            .iter()
            .filter(|m| m.direction == Direction::Incoming)
            .count();
        if incoming >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {incoming} arrived"
        );
        user.sync(Duration::from_secs(1)).await;
    }
}

/// Bob writes to Alice about lunch in their chat, in a group and as a file's name; Alice
/// answers. Returns the group.
async fn lunch_talk(alice: &TestUser, bob: &TestUser) -> Conversation {
    let mut alice_session = alice.online().await;
    let group = alice_session
        .create_group("picnic", &["bob"])
        .await
        .unwrap();
    bob.sync(Duration::from_secs(2)).await;
    let mut bob_session = bob.connect().await;
    bob_session
        .send_text("alice", "Lunch at noon?")
        .await
        .unwrap();
    bob_session
        .send_text("alice", "or dinner later")
        .await
        .unwrap();
    bob_session
        .send_text("picnic", "lunch in the park")
        .await
        .unwrap();
    alice_session
        .send_text("bob", "yes, LUNCH sounds good")
        .await
        .unwrap();
    let file = write_file(bob.dir.path(), "lunch-menu.pdf", b"%PDF soup, bread");
    bob_session
        .send_file("alice", &file, Some("see attached"), |_| {})
        .await
        .unwrap();
    bob_session.close().await;
    alice_session.close().await;
    receive(alice, Conversation::Direct(bob.client.user_id()), 3).await;
    receive(alice, Conversation::Group(group), 1).await;
    Conversation::Group(group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_direct_group_and_file_messages_newest_first_with_filters() {
    let (_relay_dir, _relay, alice, bob) = two_friends().await;
    let group = lunch_talk(&alice, &bob).await;
    let client = &alice.client;
    // Indexed as each message was stored, in the same write: nothing to catch up on.
    assert!(!client.store().ensure_search_index().unwrap());

    // Newest first by when they were written (Alice's answer was stored before Bob's
    // messages arrived, yet ranks by its time), any case, file names included.
    assert_eq!(
        found(client, &query("lunch")),
        [
            "lunch-menu.pdf",
            "yes, LUNCH sounds good",
            "lunch in the park",
            "Lunch at noon?"
        ]
    );
    // Every word must be there.
    assert_eq!(found(client, &query("noon LUNCH")), ["Lunch at noon?"]);
    assert!(found(client, &query("lunch supper")).is_empty());
    // Captions and file names.
    assert_eq!(found(client, &query("attached")), ["lunch-menu.pdf"]);
    assert_eq!(found(client, &query("menu")), ["lunch-menu.pdf"]);

    let in_group = SearchQuery {
        within: Some(group),
        ..query("lunch")
    };
    assert_eq!(found(client, &in_group), ["lunch in the park"]);
    let mine = SearchQuery {
        from: Some(Sender::Me),
        ..query("lunch")
    };
    assert_eq!(found(client, &mine), ["yes, LUNCH sounds good"]);
    let bobs_in_chat = SearchQuery {
        from: Some(Sender::User(bob.client.user_id())),
        within: Some(Conversation::Direct(bob.client.user_id())),
        ..query("lunch")
    };
    assert_eq!(
        found(client, &bobs_in_chat),
        ["lunch-menu.pdf", "Lunch at noon?"]
    );
    let two = SearchQuery {
        limit: 2,
        ..query("lunch")
    };
    assert_eq!(
        found(client, &two),
        ["lunch-menu.pdf", "yes, LUNCH sounds good"]
    );
    // Bob's side has his own index: the same words, his view.
    receive(&bob, Conversation::Direct(alice.client.user_id()), 1).await;
    assert_eq!(
        found(&bob.client, &query("sounds")),
        ["yes, LUNCH sounds good"]
    );

    // Bad queries are typed errors.
    assert!(matches!(
        client.store().search(&query(" ?! ")),
        Err(SearchError::NoWords)
    ));
    let many: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    assert!(matches!(
        client.store().search(&query(&many.join(" "))),
        Err(SearchError::TooManyWords)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_is_forgotten_by_search_and_history() {
    let (_relay_dir, _relay, alice, bob) = two_friends().await;
    let mut bob_session = bob.connect().await;
    let first = bob_session
        .send_text("alice", "Lunch at noon?")
        .await
        .unwrap();
    bob_session
        .send_text("alice", "lunch tomorrow")
        .await
        .unwrap();
    bob_session.close().await;
    let chat = Conversation::Direct(bob.client.user_id());
    receive(&alice, chat, 2).await;
    let store = alice.client.store();
    assert_eq!(found(&alice.client, &query("noon")), ["Lunch at noon?"]);

    let deleted = store.delete_message(&first.id).unwrap().unwrap();
    assert_eq!(deleted.text, "Lunch at noon?");
    // Forgotten in the same write, not by a rebuild on the next search.
    assert!(!store.ensure_search_index().unwrap());
    assert!(found(&alice.client, &query("noon")).is_empty());
    assert_eq!(found(&alice.client, &query("lunch")), ["lunch tomorrow"]);
    let history: Vec<String> = store
        .history(&chat)
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(history, ["lunch tomorrow"]);
    assert!(store.message(&first.id).unwrap().is_none());
    assert!(store.delete_message(&first.id).unwrap().is_none());
    // Nothing stale: the index is complete for what is left, not rebuilt.
    assert!(!store.ensure_search_index().unwrap());
}

/// Opens the client's database file directly (as an older build, or a crash, leaves it).
fn raw(dir: &std::path::Path) -> Database {
    Database::open(dir.join(tidings_client::store::STORE_FILE)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_index_is_rebuilt_and_one_behind_the_history_catches_up() {
    let (_relay_dir, _relay, alice, bob) = two_friends().await;
    let mut bob_session = bob.connect().await;
    bob_session
        .send_text("alice", "Lunch at noon?")
        .await
        .unwrap();
    bob_session.close().await;
    let chat = Conversation::Direct(bob.client.user_id());
    receive(&alice, chat, 1).await;
    alice.client.queue_text("bob", "lunch, sure").await.unwrap();
    let TestUser { dir, client } = alice;
    drop(client);

    // A data dir from before search: no index tables at all.
    let db = raw(dir.path());
    let txn = db.begin_write().unwrap();
    for table in [
        "search_postings",
        "search_word_counts",
        "search_docs",
        "search_doc_of",
        "search_meta",
    ] {
        let handle = redb::TableDefinition::<&[u8], &[u8]>::new(table);
        assert!(txn.delete_table(handle).unwrap(), "{table} was there");
    }
    txn.commit().unwrap();
    drop(db);

    let client = Client::open(dir.path(), None).unwrap();
    assert_eq!(
        found(&client, &query("lunch")),
        ["lunch, sure", "Lunch at noon?"]
    );
    assert!(!client.store().ensure_search_index().unwrap());
    drop(client);

    // A message written by a build that does not index (downgraded, then upgraded): the
    // index is behind. It claims to be from next year; it ranks by when it was stored.
    let db = raw(dir.path());
    let txn = db.begin_write().unwrap();
    let record = MessageRecord {
        id: EnvelopeId::random(),
        peer: bob.client.user_id(),
        group: None,
        direction: Direction::Incoming,
        text: "lunch from the future".into(),
        sent_at_ms: now_ms() + 365 * 86_400_000,
        stored_at_ms: 1_000,
        status: MessageStatus::Received,
        media: None,
    };
    // Sealed at rest under Alice's keys, as that build would have.
    let identity =
        tidings_keys::Identity::load(&dir.path().join(tidings_client::KEY_FILE), None).unwrap();
    let key = tables::message_key(&chat, 7);
    let sealed = tidings_client::store::AtRest::new(identity.store_key())
        .seal_record("messages", &key, &record)
        .unwrap();
    txn.open_table(tables::MESSAGES)
        .unwrap()
        .insert(key.as_slice(), sealed.as_slice())
        .unwrap();
    txn.commit().unwrap();
    drop(db);

    let client = Client::open(dir.path(), None).unwrap();
    assert_eq!(
        found(&client, &query("lunch")),
        ["lunch, sure", "Lunch at noon?", "lunch from the future"]
    );
    assert!(!client.store().ensure_search_index().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_searches_with_highlights_and_deletes_by_id() {
    let (_relay_dir, _relay, alice, bob) = two_friends().await;
    let _group = lunch_talk(&alice, &bob).await;
    let dir = alice.dir.path();

    let out = cli::ok(dir, &["search", "lunch", "--from", "bob", "--limit", "3"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("[file] *lunch*-menu.pdf") && lines[0].contains("see attached"),
        "{out}"
    );
    assert!(
        lines[1].contains("#picnic / bob: *lunch* in the park"),
        "{out}"
    );
    assert!(lines[2].contains("bob: *Lunch* at noon?"), "{out}");
    let id = lines[2].rsplit('#').next().unwrap().trim().to_string();

    let out = cli::ok(dir, &["search", "NOON", "--in", "bob"]);
    assert!(
        out.contains("*Lunch* at *noon*?") || out.contains("Lunch at *noon*?"),
        "{out}"
    );
    assert!(cli::ok(dir, &["search", "noon", "--in", "picnic"]).contains("no messages found"));

    let out = cli::ok(dir, &["delete", &format!("#{id}")]);
    assert!(out.contains("deleted"), "{out}");
    assert!(cli::ok(dir, &["search", "noon"]).contains("no messages found"));
    let again = cli::tidings(dir, &["delete", &id]);
    assert!(!again.status.success());
    assert!(!cli::tidings(dir, &["delete", "not-an-id"]).status.success());
}
