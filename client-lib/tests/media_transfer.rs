//! Media through real relays on loopback: files sent 1:1, to a group, to another relay's
//! users and from one device to the account's others are saved byte-equal; a forward and a
//! second send of the same file upload nothing (unless the relay let the blob go: then it
//! goes up again as the same blob); a blob altered on the relay's disk, a file sealed in
//! other chunks, and a file over the quota or the size limit are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{
    TestUser,
    media::{last_progress, media_messages, pattern, relay_blobs, write_file},
    two_friends,
};
use tidings_client::{ClientError, MediaError, MessageStatus};
use tidings_protocol::media::MediaKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_sent_one_to_one_are_saved_byte_equal_on_the_other_side() {
    let (relay_dir, _relay, alice_user, bob_user) = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut alice = alice_user.connect().await;
    // Empty, one byte, several chunks and several data frames.
    let sizes = [0usize, 1, 600_000];
    for (index, size) in sizes.iter().enumerate() {
        let bytes = pattern(*size, index as u8);
        let path = write_file(files.path(), &format!("file{index}.jpg"), &bytes);
        let (done, progress) = last_progress();
        let sent = alice
            .send_file("bob", &path, Some("for you"), progress)
            .await
            .unwrap();
        assert!(sent.uploaded);
        assert_eq!(sent.record.status, MessageStatus::Sent);
        let media = sent.record.media.as_ref().unwrap();
        assert_eq!(
            done.load(Ordering::SeqCst),
            media.blob.size,
            "progress ends at the total"
        );
        assert_eq!((media.size, media.kind), (*size as u64, MediaKind::Image));
    }
    // Alice's sealed copies are gone once uploaded.
    let outgoing = alice_user.dir.path().join("media/outgoing");
    assert_eq!(std::fs::read_dir(&outgoing).unwrap().count(), 0);

    let received = media_messages(&bob_user, sizes.len()).await;
    for (index, record) in received.iter().enumerate() {
        let media = record.media.as_ref().unwrap();
        assert_eq!(media.name, format!("file{index}.jpg"));
        assert_eq!(record.text, "for you");
        let (done, mut progress) = last_progress();
        let saved = bob_user
            .client
            .save_media(record.id, out.path(), &mut progress)
            .await
            .unwrap();
        assert_eq!(saved, out.path().join(&media.name));
        assert_eq!(
            std::fs::read(&saved).unwrap(),
            pattern(sizes[index], index as u8)
        );
        assert_eq!(done.load(Ordering::SeqCst), media.blob.size);
    }
    // The relay holds ciphertext only: no plaintext of the big file on its disk.
    let plain = pattern(600_000, 2);
    for blob in relay_blobs(relay_dir.path()) {
        let stored = std::fs::read(&blob).unwrap();
        assert!(
            !stored
                .windows(64)
                .any(|window| window == &plain[1000..1064])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_media_reaches_both_members() {
    let (relay_dir, relay, alice_user, bob_user) = two_friends().await;
    let carol = TestUser::register(&relay).await;
    alice_user.befriend("carol", &carol);
    carol.befriend("alice", &alice_user);
    let mut alice = alice_user.online().await;
    let group = alice.create_group("trip", &["bob", "carol"]).await.unwrap();
    for user in [&bob_user, &carol] {
        user.sync(Duration::from_secs(3)).await;
    }
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(300_000, 9);
    let path = write_file(files.path(), "map.pdf", &bytes);
    let sent = alice.send_file("trip", &path, None, |_| {}).await.unwrap();
    assert_eq!(sent.record.group, Some(group));
    assert_eq!(sent.record.status, MessageStatus::Sent);
    for user in [&bob_user, &carol] {
        let got = media_messages(user, 1).await;
        assert_eq!(got[0].group, Some(group));
        let out = tempfile::tempdir().unwrap();
        let saved = user
            .client
            .save_media(got[0].id, &out.path().join("map-copy.pdf"), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), bytes);
    }
    assert_eq!(relay_blobs(relay_dir.path()).len(), 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_and_a_second_send_of_the_same_file_upload_nothing() {
    let (relay_dir, relay, alice_user, bob_user) = two_friends().await;
    let carol = TestUser::register(&relay).await;
    bob_user.befriend("carol", &carol);
    carol.befriend("bob", &bob_user);
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(200_000, 4);
    let path = write_file(files.path(), "song.mp3", &bytes);
    let mut alice = alice_user.connect().await;
    let first = alice.send_file("bob", &path, None, |_| {}).await.unwrap();
    assert!(first.uploaded);
    assert_eq!(relay_blobs(relay_dir.path()).len(), 1);

    let again = alice.send_file("bob", &path, None, |_| {}).await.unwrap();
    assert!(!again.uploaded, "the earlier upload is reused");
    assert_eq!(
        again.record.media.as_ref().unwrap().blob,
        first.record.media.as_ref().unwrap().blob
    );

    let received = media_messages(&bob_user, 2).await;
    let mut bob = bob_user.connect().await;
    let forwarded = bob.forward(received[0].id, "carol").await.unwrap();
    assert_eq!(forwarded.status, MessageStatus::Sent);
    assert_eq!(relay_blobs(relay_dir.path()).len(), 1, "no new blob");

    let got = media_messages(&carol, 1).await;
    assert_eq!(got[0].media.as_ref().unwrap().kind, MediaKind::Audio);
    let out = tempfile::tempdir().unwrap();
    let saved = carol
        .client
        .save_media(got[0].id, out.path(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_altered_on_the_relay_is_refused_and_leaves_no_file() {
    let (relay_dir, _relay, alice_user, bob_user) = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let path = write_file(files.path(), "photo.png", &pattern(150_000, 1));
    let mut alice = alice_user.connect().await;
    alice.send_file("bob", &path, None, |_| {}).await.unwrap();
    let received = media_messages(&bob_user, 1).await;

    let blobs = relay_blobs(relay_dir.path());
    assert_eq!(blobs.len(), 1);
    let mut stored = std::fs::read(&blobs[0]).unwrap();
    stored[70_000] ^= 0x40;
    std::fs::write(&blobs[0], stored).unwrap();

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("photo.png");
    let refused = bob_user
        .client
        .save_media(received[0].id, &target, &mut |_| {})
        .await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Media(MediaError::Mismatch { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no file, no temp file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_quota_or_the_size_limit_is_refused_and_nothing_is_queued() {
    let relay_dir = common::RelayDir::with(|config| {
        config.blobs.user_quota_bytes = 300_000;
        config.blobs.max_blob_bytes = 200_000;
    });
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    let files = tempfile::tempdir().unwrap();
    let mut session = alice.connect().await;

    let big = write_file(files.path(), "big.bin", &pattern(250_000, 1));
    let refused = session.send_file("bob", &big, None, |_| {}).await;
    assert!(
        matches!(&refused, Err(ClientError::Media(MediaError::Transfer(
            tidings_client::media::TransferError::Refused(answer)
        ))) if answer.code == tidings_protocol::ErrorCode::BlobTooLarge),
        "{refused:?}"
    );

    let first = write_file(files.path(), "first.bin", &pattern(150_000, 2));
    session
        .send_file("bob", &first, None, |_| {})
        .await
        .unwrap();
    let second = write_file(files.path(), "second.bin", &pattern(180_000, 3));
    let refused = session.send_file("bob", &second, None, |_| {}).await;
    assert!(
        matches!(&refused, Err(ClientError::Media(MediaError::Transfer(
            tidings_client::media::TransferError::Refused(answer)
        ))) if answer.code == tidings_protocol::ErrorCode::QuotaExceeded),
        "{refused:?}"
    );
    // Nothing was queued for the refused files: Bob gets the one that went up.
    let history = alice
        .client
        .history("bob")
        .unwrap()
        .into_iter()
        .filter_map(|record| record.media.map(|media| media.name))
        .collect::<Vec<_>>();
    assert_eq!(history, vec!["first.bin".to_string()]);
    assert_eq!(relay_blobs(relay_dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sent_from_one_device_shows_and_saves_on_the_others() {
    let (_relay_dir, relay, alice_user, bob_user) = two_friends().await;
    let laptop = alice_user.another_device(&relay).await;
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(100_000, 8);
    let path = write_file(files.path(), "notes.txt", &bytes);
    let mut phone = alice_user.connect().await;
    let sent = phone
        .send_file("bob", &path, Some("minutes"), |_| {})
        .await
        .unwrap();
    assert_eq!(sent.record.status, MessageStatus::Sent);

    let copies = media_messages(&laptop, 1).await;
    assert_eq!(copies[0].id, sent.record.id);
    assert_eq!(copies[0].peer, bob_user.client.user_id());
    assert_eq!(copies[0].direction, tidings_client::Direction::Outgoing);
    assert_eq!(copies[0].text, "minutes");
    let out = tempfile::tempdir().unwrap();
    let saved = laptop
        .client
        .save_media(copies[0].id, out.path(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
    assert_eq!(media_messages(&bob_user, 1).await[0].id, sent.record.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_linked_later_gets_earlier_media_in_its_history_and_saves_it() {
    let (_relay_dir, relay, alice_user, bob_user) = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(150_000, 12);
    let path = write_file(files.path(), "plan.pdf", &bytes);
    let mut bob = bob_user.connect().await;
    bob.send_file("alice", &path, Some("the plan"), |_| {})
        .await
        .unwrap();
    bob.close().await;
    assert_eq!(media_messages(&alice_user, 1).await.len(), 1);

    // A laptop joins afterwards: the phone hands it the recent history, media included.
    let laptop = alice_user.another_device(&relay).await;
    alice_user.connect().await.flush().await.unwrap();
    laptop.sync(Duration::from_secs(3)).await;
    let bob_id = bob_user.client.user_id();
    let shown = laptop.client.history(&bob_id.to_string()).unwrap();
    let record = shown
        .iter()
        .find(|record| record.media.is_some())
        .unwrap_or_else(|| panic!("no media in the laptop's history: {shown:#?}"));
    assert_eq!(record.text, "the plan");
    let media = record.media.as_ref().unwrap();
    assert_eq!(media.name, "plan.pdf");
    assert!(
        media.thumbnail.is_none(),
        "history items leave thumbnails behind"
    );
    let out = tempfile::tempdir().unwrap();
    let saved = laptop
        .client
        .save_media(record.id, out.path(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_another_relay_is_fetched_once_by_the_recipients_relay() {
    // Relays serve each other 256 KiB/s: the first download waits on the fetch a while.
    let net = common::Net::start_with(2, |config| {
        config.blobs.federation_bytes_per_sec = 256 * 1024;
    })
    .await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    let carol = TestUser::register(net.relay(1)).await;
    alice.befriend("bob", &bob);
    alice.befriend("carol", &carol);
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(700_000, 6);
    let path = write_file(files.path(), "poster.png", &bytes);
    let mut session = alice.connect().await;
    let first = session.send_file("bob", &path, None, |_| {}).await.unwrap();
    session
        .send_file("carol", &path, None, |_| {})
        .await
        .unwrap();
    assert_eq!(
        first.record.media.as_ref().unwrap().blob.relay,
        net.relay(0).peer_id().to_string()
    );
    assert!(
        relay_blobs(net.dir(1)).is_empty(),
        "not fetched before it is asked for"
    );

    for (user, waits) in [(&bob, true), (&carol, false)] {
        let got = media_messages(user, 1).await;
        let out = tempfile::tempdir().unwrap();
        let mut fetching = Vec::new();
        let saved = user
            .client
            .save_media(
                got[0].id,
                out.path(),
                &mut |progress: tidings_client::Progress| {
                    if progress.relay_fetching {
                        fetching.push(progress.done);
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), bytes);
        // The first download is told how the relay's fetch goes; the second needs none.
        assert_eq!(!fetching.is_empty(), waits, "{fetching:?}");
        assert!(fetching.is_sorted(), "{fetching:?}");
    }
    assert_eq!(relay_blobs(net.dir(0)).len(), 1);
    assert_eq!(
        relay_blobs(net.dir(1)).len(),
        1,
        "fetched once, served to both"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sent_again_after_its_blob_left_the_relay_goes_up_again_as_the_same_blob() {
    let (mut relay_dir, relay, alice, bob) = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(120_000, 11);
    let path = write_file(files.path(), "again.bin", &bytes);
    let first = {
        let mut session = alice.connect().await;
        session.send_file("bob", &path, None, |_| {}).await.unwrap()
    };
    // The blob is gone from the relay (as after garbage collection): its file removed, and
    // the relay's start-up check drops its row.
    relay_dir.stop(relay).await;
    let blobs = relay_blobs(relay_dir.path());
    assert_eq!(blobs.len(), 1);
    std::fs::remove_file(&blobs[0]).unwrap();
    let _relay = relay_dir.start().await;

    let mut session = alice.connect().await;
    let again = session.send_file("bob", &path, None, |_| {}).await.unwrap();
    assert!(again.uploaded, "sent again: the relay no longer held it");
    assert_eq!(
        again.record.media.as_ref().unwrap().blob.id,
        first.record.media.as_ref().unwrap().blob.id,
        "the same key seals the same bytes"
    );
    for record in media_messages(&bob, 2).await {
        let out = tempfile::tempdir().unwrap();
        let saved = bob
            .client
            .save_media(record.id, out.path(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sealed_in_other_chunks_is_refused_with_a_clear_error() {
    let (_relay_dir, _relay, alice_user, bob_user) = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let path = write_file(files.path(), "odd.bin", &pattern(10_000, 12));
    let mut alice = alice_user.connect().await;
    let sent = alice.send_file("bob", &path, None, |_| {}).await.unwrap();
    // A newer sender's chunk size, as this version would receive it.
    let mut media = *sent.record.media.clone().unwrap();
    media.chunk = 32 * 1024;
    alice_user
        .client
        .store()
        .queue_media(
            alice_user.client.user_id(),
            tidings_client::Conversation::Direct(bob_user.client.user_id()),
            media,
        )
        .unwrap();
    alice.flush().await.unwrap();

    let received = media_messages(&bob_user, 2).await;
    let odd = received
        .iter()
        .find(|record| record.media.as_ref().unwrap().chunk != 64 * 1024)
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let refused = bob_user
        .client
        .save_media(odd.id, out.path(), &mut |_| {})
        .await;
    let error = refused.unwrap_err();
    assert!(
        matches!(error, ClientError::Media(MediaError::ChunkSize(32_768))),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("sealed in chunks of 32768 bytes; this version opens only 65536"),
        "{error}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}
