//! Picture statuses between real relays: the file goes up through the media path, a contact
//! on another relay saves the same bytes (their relay fetches the blob from the poster's),
//! someone outside the audience gets neither the status nor the file, and at expiry every
//! relay holding the status drops its reference (and garbage collection the blob); the same
//! from the command line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    Net, RelayDir, TestUser,
    cli::ok,
    media::{pattern, relay_blobs, write_file},
    wait_for_home,
};
use tidings_client::status::{Audience, StatusClock};
use tidings_protocol::status::STATUS_LIFETIME_MS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_status_reaches_a_contact_on_another_relay_and_its_blob_goes_at_expiry() {
    // No retention and no grace: an unreferenced blob is collectable at once.
    let net = Net::start_with(2, |config| {
        config.blobs.retention_days = 0;
        config.blobs.upload_grace_hours = 0;
    })
    .await;
    let (home, remote) = (net.relay(0), net.relay(1));
    let (home_clock, remote_clock): (StatusClock, StatusClock) =
        (home.status_clock(), remote.status_clock());
    let alice = TestUser::register(home).await;
    let bob = TestUser::register(remote).await;
    let eve = TestUser::register(remote).await;
    for (name, friend) in [("bob", &bob), ("eve", &eve)] {
        alice.befriend(name, friend);
        friend.befriend("alice", &alice);
    }
    wait_for_home(home, &bob, remote).await;
    wait_for_home(home, &eve, remote).await;
    wait_for_home(remote, &alice, home).await;

    let bytes = pattern(300_000, 7);
    let picture = write_file(alice.dir.path(), "sunset.jpg", &bytes);
    let posted = alice
        .client
        .post_status_file(
            &home_clock,
            &picture,
            "golden hour",
            &Audience::Only(vec!["bob".into()]),
        )
        .await
        .unwrap();
    assert_eq!(posted.audience, 1);

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
    assert_eq!(shown[0].text, "golden hour");
    let media = shown[0].media.clone().expect("a picture status");
    assert_eq!(media.name, "sunset.jpg");
    let blob = media.blob.id;
    assert_eq!(media.blob.relay, home.peer_id().to_string());

    let saved = bob
        .client
        .save_status_media(&shown[0])
        .await
        .unwrap()
        .unwrap();
    assert!(
        saved.starts_with(bob.dir.path().join("downloads")),
        "{saved:?}"
    );
    assert_eq!(std::fs::read(&saved).unwrap(), bytes, "the same file");
    let again = bob.client.save_status_media(&shown[0]).await.unwrap();
    assert_eq!(again, Some(saved), "saved once");
    assert_eq!(
        relay_blobs(net.dir(1)).len(),
        1,
        "bob's relay fetched the blob from alice's"
    );
    for relay in [home, remote] {
        assert_eq!(
            relay.media_refs(blob).await.unwrap(),
            1,
            "one status, one ref"
        );
    }

    // Eve shares bob's relay and is alice's contact, but not in the audience.
    assert!(
        eve.client
            .view_statuses(&remote_clock, "alice")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        eve.client.store().received_statuses(0).unwrap().is_empty(),
        "no reference or key reached eve"
    );
    assert!(!eve.dir.path().join("downloads").exists());

    // A day later, after one sweep on each relay: no status, no reference, and the blob
    // garbage collection deletes the copies.
    for (relay, clock) in [(home, &home_clock), (remote, &remote_clock)] {
        clock.advance(STATUS_LIFETIME_MS + 1);
        assert_eq!(relay.sweep_statuses().await.unwrap(), 1);
        assert_eq!(relay.media_refs(blob).await.unwrap(), 0, "released");
    }
    remote.collect_blob_garbage().await.unwrap();
    assert!(
        relay_blobs(net.dir(1)).is_empty(),
        "collected once unreferenced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picture_statuses_from_the_command_line() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let (alice_dir, bob_dir) = (alice.dir.path(), bob.dir.path());
    let bytes = pattern(5000, 3);
    let clip = write_file(alice_dir, "clip.mp4", &bytes);
    let clip = clip.to_str().unwrap();

    let posted = ok(
        alice_dir,
        &["status", "post", "--file", clip, "--to", "bob"],
    );
    assert!(posted.contains("status posted to 1 people"), "{posted}");
    let viewed = ok(bob_dir, &["status", "view", "alice"]);
    assert!(viewed.contains("[video] clip.mp4"), "{viewed}");
    assert!(viewed.contains("saved to"), "{viewed}");
    let saved = std::fs::read_dir(bob_dir.join("downloads"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect::<Vec<_>>();
    assert_eq!(saved.len(), 1);
    assert_eq!(std::fs::read(&saved[0]).unwrap(), bytes);
    let seen = ok(alice_dir, &["status", "seen"]);
    assert!(seen.contains("[video] clip.mp4"), "{seen}");
    assert!(seen.contains("seen by 1 of 1: bob"), "{seen}");

    let notes = write_file(alice_dir, "notes.pdf", b"%PDF");
    let refused = common::cli::tidings(
        alice_dir,
        &["status", "post", "--file", notes.to_str().unwrap()],
    );
    assert!(!refused.status.success(), "a pdf is not a picture or video");
}
