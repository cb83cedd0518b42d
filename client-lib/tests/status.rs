//! Status updates between clients through a real relay: seen by their audience only ("all
//! contacts except" and "only" lists), a new session key when the audience shrinks, "seen"
//! back to the poster only, and gone at 24 hours on relay and clients (the clock advanced,
//! not slept); the same from the command line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Net, RelayDir, TestUser, cli::ok, wait_for_home};
use tidings_client::status::{Audience, StatusClock};
use tidings_protocol::status::STATUS_LIFETIME_MS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_reaches_its_audience_only_and_expires_everywhere() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let clock: StatusClock = relay.status_clock();
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    let carol = TestUser::register(&relay).await;
    let dave = TestUser::register(&relay).await;
    let eve = TestUser::register(&relay).await;
    for (name, friend) in [("bob", &bob), ("carol", &carol), ("dave", &dave)] {
        alice.befriend(name, friend);
        friend.befriend("alice", &alice);
    }
    eve.befriend("alice", &alice);

    let except_dave = Audience::Except(vec!["dave".into()]);
    let first = alice
        .client
        .post_status(&clock, "at the beach", &except_dave)
        .await
        .unwrap();
    assert_eq!(first.audience, 2);
    assert_eq!(first.keys_sent, 2, "bob's and carol's devices get the key");

    let overview = bob.client.status_overview(&clock).await.unwrap();
    assert_eq!(overview.len(), 1);
    assert_eq!(
        (overview[0].poster, overview[0].unseen),
        (alice.client.user_id(), 1)
    );
    let shown = bob.client.view_statuses(&clock, "alice").await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].text, "at the beach");
    let again = bob.client.status_overview(&clock).await.unwrap();
    assert_eq!(again[0].unseen, 0, "viewed");
    let carols = carol.client.view_statuses(&clock, "alice").await.unwrap();
    assert_eq!(carols.len(), 1);
    for outsider in [&dave, &eve] {
        let overview = outsider.client.status_overview(&clock).await.unwrap();
        assert!(overview.is_empty(), "outside the audience: {overview:?}");
    }

    let mine = alice.client.my_statuses(&clock).await.unwrap();
    assert_eq!(mine.len(), 1);
    let mut seen_by = mine[0].seen_by.clone();
    seen_by.sort();
    let mut viewers = vec![bob.client.user_id(), carol.client.user_id()];
    viewers.sort();
    assert_eq!(seen_by, viewers, "seen receipts came back to the poster");

    // Only bob now: carol held the session key, so a new session goes to bob again.
    let second = alice
        .client
        .post_status(&clock, "bob only", &Audience::Only(vec!["bob".into()]))
        .await
        .unwrap();
    assert_eq!(
        second.keys_sent, 1,
        "a new session after the audience shrank"
    );
    let shown = bob.client.view_statuses(&clock, "alice").await.unwrap();
    let texts: Vec<&str> = shown.iter().map(|status| status.text.as_str()).collect();
    assert_eq!(texts, ["at the beach", "bob only"], "in the order posted");
    let carols = carol.client.view_statuses(&clock, "alice").await.unwrap();
    assert_eq!(carols.len(), 1, "carol is not in the second audience");

    // A day later: gone from every client and, after one sweep, from the relay.
    assert_eq!(relay.stored_statuses().await.unwrap(), 2);
    clock.advance(STATUS_LIFETIME_MS + 1);
    for viewer in [&bob, &carol] {
        assert!(
            viewer
                .client
                .status_overview(&clock)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            viewer
                .client
                .store()
                .received_statuses(0)
                .unwrap()
                .is_empty(),
            "deleted from the client's store, not just hidden"
        );
    }
    assert!(alice.client.my_statuses(&clock).await.unwrap().is_empty());
    assert_eq!(relay.sweep_statuses().await.unwrap(), 2);
    assert_eq!(relay.stored_statuses().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_from_the_command_line() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let (alice_dir, bob_dir) = (alice.dir.path(), bob.dir.path());

    let posted = ok(alice_dir, &["status", "post", "new job!", "--to", "bob"]);
    assert!(posted.contains("status posted to 1 people"), "{posted}");
    let listed = ok(bob_dir, &["status", "list"]);
    assert!(listed.contains("alice  1 new of 1"), "{listed}");
    let viewed = ok(bob_dir, &["status", "view", "alice"]);
    assert!(viewed.contains("new job!"), "{viewed}");
    let seen = ok(alice_dir, &["status", "seen"]);
    assert!(seen.contains("seen by 1 of 1: bob"), "{seen}");
    assert!(
        ok(alice_dir, &["status"]).contains("relay"),
        "plain `status` still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_crosses_relays_once_and_expires_on_both() {
    let net = Net::start(2).await;
    let (home, remote) = (net.relay(0), net.relay(1));
    let (home_clock, remote_clock) = (home.status_clock(), remote.status_clock());
    let alice = TestUser::register(home).await;
    let bob = TestUser::register(remote).await;
    let carol = TestUser::register(remote).await;
    alice.befriend("bob", &bob);
    alice.befriend("carol", &carol);
    bob.befriend("alice", &alice);
    carol.befriend("alice", &alice);
    wait_for_home(home, &bob, remote).await;
    wait_for_home(home, &carol, remote).await;
    wait_for_home(remote, &alice, home).await;

    let only_bob = Audience::Only(vec!["bob".into()]);
    alice
        .client
        .post_status(&home_clock, "far away", &only_bob)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let shown = bob
            .client
            .view_statuses(&remote_clock, "alice")
            .await
            .unwrap();
        if !shown.is_empty() || tokio::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(shown.len(), 1, "forwarded to bob's relay");
    assert_eq!(shown[0].text, "far away");
    assert!(
        carol
            .client
            .status_overview(&remote_clock)
            .await
            .unwrap()
            .is_empty(),
        "carol shares bob's relay but not the audience"
    );
    assert_eq!(remote.stored_statuses().await.unwrap(), 1);
    assert_eq!(home.stored_statuses().await.unwrap(), 1);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mine = alice.client.my_statuses(&home_clock).await.unwrap();
        if mine[0].seen_by == [bob.client.user_id()] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no seen receipt");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for (relay, clock) in [(home, &home_clock), (remote, &remote_clock)] {
        clock.advance(STATUS_LIFETIME_MS + 1);
        assert_eq!(relay.sweep_statuses().await.unwrap(), 1);
        assert_eq!(relay.stored_statuses().await.unwrap(), 0);
    }
    assert!(
        bob.client
            .status_overview(&remote_clock)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_posters_other_device_lists_who_saw_a_status() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let clock: StatusClock = relay.status_clock();
    let phone = TestUser::register(&relay).await;
    let laptop = phone.another_device(&relay).await;
    let bob = TestUser::register(&relay).await;
    phone.befriend("bob", &bob);
    laptop.befriend("bob", &bob);
    bob.befriend("alice", &phone);

    let posted = phone
        .client
        .post_status(&clock, "from my phone", &Audience::Contacts)
        .await
        .unwrap();
    let on_laptop = laptop.client.my_statuses(&clock).await.unwrap();
    assert_eq!(on_laptop.len(), 1, "the laptop heard of the phone's status");
    assert_eq!(on_laptop[0].id, posted.id);
    assert_eq!(on_laptop[0].text, "from my phone");
    assert_eq!(on_laptop[0].audience, [bob.client.user_id()]);
    assert!(on_laptop[0].seen_by.is_empty());

    let shown = bob.client.view_statuses(&clock, "alice").await.unwrap();
    assert_eq!(shown.len(), 1);
    for device in [&phone, &laptop] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mine = device.client.my_statuses(&clock).await.unwrap();
            if mine[0].seen_by == [bob.client.user_id()] {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no seen receipt");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let seen = ok(laptop.dir.path(), &["status", "seen"]);
    assert!(seen.contains("seen by 1 of 1: bob"), "{seen}");
}
