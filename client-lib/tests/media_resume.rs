//! Media transfers cut short: an upload and a download dropped midway resume where they
//! stopped, also after the process restarts; the `tidings` CLI sends, shows, saves and
//! forwards a file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::cli::{ok, tidings};
use common::{
    TestUser,
    media::{media_messages, pattern, relay_blobs, write_file},
    two_friends,
};
use tidings_client::Progress;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_upload_and_a_cut_download_resume_where_they_stopped() {
    let (_relay_dir, _relay, alice_user, bob_user) = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let size = 6 << 20;
    let bytes = pattern(size, 7);
    let path = write_file(files.path(), "clip.mp4", &bytes);
    let cut_at = 1 << 20;

    // The upload is dropped (its stream with it) once a megabyte went up.
    let mut alice = alice_user.connect().await;
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
    let received = media_messages(&bob_user, 1).await;
    let out = tempfile::tempdir().unwrap();
    let reached = Arc::new(tokio::sync::Notify::new());
    let signal = reached.clone();
    let mut cut_progress = move |progress: Progress| {
        if progress.done >= cut_at {
            signal.notify_one();
        }
    };
    tokio::select! {
        saved = bob_user.client.save_media(received[0].id, out.path(), &mut cut_progress) => {
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
    let saved = bob_user
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
async fn an_upload_cut_before_a_restart_resumes_after_it() {
    let (_relay_dir, _relay, alice_user, bob_user) = two_friends().await;
    let files = tempfile::tempdir().unwrap();
    let bytes = pattern(4 << 20, 3);
    let path = write_file(files.path(), "talk.m4a", &bytes);
    let data_dir = alice_user.dir.path().to_path_buf();
    {
        let mut alice = alice_user.connect().await;
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
    } = alice_user;
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
    let received = media_messages(&bob_user, 1).await;
    let out = tempfile::tempdir().unwrap();
    let saved = bob_user
        .client
        .save_media(received[0].id, out.path(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), bytes);
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
