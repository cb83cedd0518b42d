//! Media through real relays on loopback: files sent 1:1 and to a group are saved byte-equal
//! on the other side; a forward and a second send of the same file upload nothing; a blob
//! altered on the relay's disk is refused and leaves no file; cut uploads and downloads
//! resume where they stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{TestUser, two_friends};
use tidings_client::{ClientError, Event, MediaError, MessageRecord, MessageStatus, Progress};
use tidings_protocol::media::MediaKind;

/// Bytes that differ from position to position (and from file to file by `seed`).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The whole blobs a relay holds on disk (uploads in progress not counted).
fn relay_blobs(relay_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(relay_dir.join("blobs")) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect()
}

/// Syncs `user` until `count` media messages arrived; returns them.
async fn media_messages(user: &TestUser, count: usize) -> Vec<MessageRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "only got {got:?}");
        for event in user.sync(Duration::from_secs(2)).await {
            if let Event::Message(record) = event
                && record.media.is_some()
            {
                got.push(record);
            }
        }
    }
    got
}

/// The last progress a transfer reported.
fn last_progress() -> (Arc<AtomicU64>, impl FnMut(Progress) + Send + 'static) {
    let done = Arc::new(AtomicU64::new(u64::MAX));
    let seen = done.clone();
    (done, move |progress: Progress| {
        assert!(progress.done <= progress.total);
        seen.store(progress.done, Ordering::SeqCst);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_sent_one_to_one_are_saved_byte_equal_on_the_other_side() {
    let pair = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut alice = pair.alice.connect().await;
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
    let outgoing = pair.alice.dir.path().join("media/outgoing");
    assert_eq!(std::fs::read_dir(&outgoing).unwrap().count(), 0);

    let received = media_messages(&pair.bob, sizes.len()).await;
    for (index, record) in received.iter().enumerate() {
        let media = record.media.as_ref().unwrap();
        assert_eq!(media.name, format!("file{index}.jpg"));
        assert_eq!(record.text, "for you");
        let (done, mut progress) = last_progress();
        let saved = pair
            .bob
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
    for blob in relay_blobs(pair.relay_dir.path()) {
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
    let pair = two_friends().await;
    let carol = TestUser::register(&pair.relay).await;
    pair.alice.befriend("carol", &carol);
    carol.befriend("alice", &pair.alice);
    let mut alice = pair.alice.online().await;
    let group = alice.create_group("trip", &["bob", "carol"]).await.unwrap();
    for user in [&pair.bob, &carol] {
        user.sync(Duration::from_secs(3)).await;
    }
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(300_000, 9);
    let path = write_file(files.path(), "map.pdf", &bytes);
    let sent = alice.send_file("trip", &path, None, |_| {}).await.unwrap();
    assert_eq!(sent.record.group, Some(group));
    assert_eq!(sent.record.status, MessageStatus::Sent);
    for user in [&pair.bob, &carol] {
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
    assert_eq!(relay_blobs(pair.relay_dir.path()).len(), 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_and_a_second_send_of_the_same_file_upload_nothing() {
    let pair = two_friends().await;
    let carol = TestUser::register(&pair.relay).await;
    pair.bob.befriend("carol", &carol);
    carol.befriend("bob", &pair.bob);
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(200_000, 4);
    let path = write_file(files.path(), "song.mp3", &bytes);
    let mut alice = pair.alice.connect().await;
    let first = alice.send_file("bob", &path, None, |_| {}).await.unwrap();
    assert!(first.uploaded);
    assert_eq!(relay_blobs(pair.relay_dir.path()).len(), 1);

    let again = alice.send_file("bob", &path, None, |_| {}).await.unwrap();
    assert!(!again.uploaded, "the earlier upload is reused");
    assert_eq!(
        again.record.media.as_ref().unwrap().blob,
        first.record.media.as_ref().unwrap().blob
    );

    let received = media_messages(&pair.bob, 2).await;
    let mut bob = pair.bob.connect().await;
    let forwarded = bob.forward(received[0].id, "carol").await.unwrap();
    assert_eq!(forwarded.status, MessageStatus::Sent);
    assert_eq!(relay_blobs(pair.relay_dir.path()).len(), 1, "no new blob");

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
    let pair = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let path = write_file(files.path(), "photo.png", &pattern(150_000, 1));
    let mut alice = pair.alice.connect().await;
    alice.send_file("bob", &path, None, |_| {}).await.unwrap();
    let received = media_messages(&pair.bob, 1).await;

    let blobs = relay_blobs(pair.relay_dir.path());
    assert_eq!(blobs.len(), 1);
    let mut stored = std::fs::read(&blobs[0]).unwrap();
    stored[70_000] ^= 0x40;
    std::fs::write(&blobs[0], stored).unwrap();

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("photo.png");
    let refused = pair
        .bob
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
async fn a_cut_upload_and_a_cut_download_resume_where_they_stopped() {
    let pair = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let size = 6 << 20;
    let bytes = pattern(size, 7);
    let path = write_file(files.path(), "clip.mp4", &bytes);
    let cut_at = 1 << 20;

    // The upload is dropped (its stream with it) once a megabyte went up.
    let mut alice = pair.alice.connect().await;
    let reached = Arc::new(tokio::sync::Notify::new());
    let signal = reached.clone();
    let cut = tokio::select! {
        sent = alice.send_file("bob", &path, None, move |progress: Progress| {
            if progress.done >= cut_at {
                signal.notify_one();
            }
        }) => panic!("the upload was meant to be cut: {sent:?}"),
        () = reached.notified() => true,
    };
    assert!(cut);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let seen = first.clone();
    let sent = alice
        .send_file("bob", &path, None, move |progress: Progress| {
            let _ =
                seen.compare_exchange(u64::MAX, progress.done, Ordering::SeqCst, Ordering::SeqCst);
        })
        .await
        .unwrap();
    assert!(sent.uploaded);
    let resumed_from = first.load(Ordering::SeqCst);
    assert!(
        resumed_from > 0 && resumed_from < sent.record.media.as_ref().unwrap().blob.size,
        "resumed from {resumed_from}"
    );

    // The download is dropped the same way, then resumes from the partial file.
    let received = media_messages(&pair.bob, 1).await;
    let out = tempfile::tempdir().unwrap();
    let reached = Arc::new(tokio::sync::Notify::new());
    let signal = reached.clone();
    let mut cut_progress = move |progress: Progress| {
        if progress.done >= cut_at {
            signal.notify_one();
        }
    };
    tokio::select! {
        saved = pair.bob.client.save_media(received[0].id, out.path(), &mut cut_progress) => {
            panic!("the download was meant to be cut: {saved:?}")
        }
        () = reached.notified() => {}
    }
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing saved yet"
    );
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let seen = first.clone();
    let saved = pair
        .bob
        .client
        .save_media(
            received[0].id,
            out.path(),
            &mut move |progress: Progress| {
                let _ = seen.compare_exchange(
                    u64::MAX,
                    progress.done,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            },
        )
        .await
        .unwrap();
    assert!(
        first.load(Ordering::SeqCst) >= cut_at,
        "resumed from the partial file"
    );
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
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

fn tidings(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TIDINGS_PASSPHRASE")
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = tidings(dir, args);
    assert!(
        output.status.success(),
        "tidings {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_sends_shows_saves_and_forwards_a_file() {
    let relay_dir = common::RelayDir::new();
    let relay = relay_dir.start().await;
    let address = common::dial_addr(&relay).to_string();
    let home = tempfile::tempdir().unwrap();
    let (alice, bob) = (home.path().join("alice"), home.path().join("bob"));
    for dir in [&alice, &bob] {
        ok(dir, &["init"]);
        ok(dir, &["register", "--relay", &address]);
    }
    let alice_card = ok(&alice, &["card"]);
    let bob_card = ok(&bob, &["card"]);
    ok(&alice, &["contact", "add", "bob", bob_card.trim()]);
    ok(&bob, &["contact", "add", "alice", alice_card.trim()]);

    let bytes = pattern(400_000, 5);
    let photo = write_file(home.path(), "photo.png", &bytes);
    let photo_arg = photo.to_str().unwrap();
    let sent = ok(
        &alice,
        &["send", "bob", "--file", photo_arg, "--caption", "look"],
    );
    assert!(
        sent.contains("✓ sent to bob: [photo] photo.png (390.6 KiB) look"),
        "{sent}"
    );

    let history = ok(&bob, &["history", "alice"]);
    let line = history
        .lines()
        .find(|line| line.contains("alice: [photo] photo.png (390.6 KiB) look  #"))
        .unwrap_or_else(|| panic!("{history}"));
    let id = line.rsplit('#').next().unwrap().trim();

    let out = home.path().join("saved");
    std::fs::create_dir(&out).unwrap();
    let saved = ok(&bob, &["media", "save", id, out.to_str().unwrap()]);
    assert!(saved.contains("saved"), "{saved}");
    assert_eq!(std::fs::read(out.join("photo.png")).unwrap(), bytes);

    let forwarded = ok(&bob, &["forward", id, "alice"]);
    assert!(
        forwarded.contains("✓ sent to alice: [photo] photo.png"),
        "{forwarded}"
    );
    assert_eq!(relay_blobs(relay_dir.path()).len(), 1);

    let neither = tidings(&alice, &["send", "bob"]);
    assert!(!neither.status.success());
    let not_media = tidings(&bob, &["media", "save", "nonsense"]);
    assert!(String::from_utf8_lossy(&not_media.stderr).contains("is not a message id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_before_a_restart_resumes_after_it() {
    let pair = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(4 << 20, 3);
    let path = write_file(files.path(), "talk.m4a", &bytes);
    let data_dir = pair.alice.dir.path().to_path_buf();
    {
        let mut alice = pair.alice.connect().await;
        let reached = Arc::new(tokio::sync::Notify::new());
        let signal = reached.clone();
        tokio::select! {
            sent = alice.send_file("bob", &path, None, move |progress: Progress| {
                if progress.done >= 1 << 20 {
                    signal.notify_one();
                }
            }) => panic!("the upload was meant to be cut: {sent:?}"),
            () = reached.notified() => {}
        }
    }
    // The process ends: every handle on the store goes; the data dir stays.
    let TestUser {
        dir: _kept,
        client: old,
    } = pair.alice;
    drop(old);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The same data dir opened again, as after a restart of the process.
    let client = tidings_client::Client::open(&data_dir, None).unwrap();
    let mut alice = client.connect().await.unwrap();
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let seen = first.clone();
    let sent = alice
        .send_file("bob", &path, None, move |progress: Progress| {
            let _ =
                seen.compare_exchange(u64::MAX, progress.done, Ordering::SeqCst, Ordering::SeqCst);
        })
        .await
        .unwrap();
    assert!(sent.uploaded);
    assert!(
        first.load(Ordering::SeqCst) > 0,
        "resumed after the restart"
    );
    let received = media_messages(&pair.bob, 1).await;
    let out = tempfile::tempdir().unwrap();
    let saved = pair
        .bob
        .client
        .save_media(received[0].id, out.path(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sent_from_one_device_shows_and_saves_on_the_others() {
    let pair = two_friends().await;
    let laptop = pair.alice.another_device(&pair.relay).await;
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(100_000, 8);
    let path = write_file(files.path(), "notes.txt", &bytes);
    let mut phone = pair.alice.connect().await;
    let sent = phone
        .send_file("bob", &path, Some("minutes"), |_| {})
        .await
        .unwrap();
    assert_eq!(sent.record.status, MessageStatus::Sent);

    let copies = media_messages(&laptop, 1).await;
    assert_eq!(copies[0].id, sent.record.id);
    assert_eq!(copies[0].peer, pair.bob.client.user_id());
    assert_eq!(copies[0].direction, tidings_client::Direction::Outgoing);
    assert_eq!(copies[0].text, "minutes");
    let out = tempfile::tempdir().unwrap();
    let saved = laptop
        .client
        .save_media(copies[0].id, out.path(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
    assert_eq!(media_messages(&pair.bob, 1).await[0].id, sent.record.id);
}
