//! Compaction: after big deletions the file shrinks; a running relay is refused untouched;
//! the estimate `status` shows sees the unused space before and not after.

use tidings_relay::{
    STORE_FILE,
    backup::{self, BackupError},
    testing::RelayDir,
};

use crate::common::RawDevice;

/// Bytes of each envelope body (large, so deletions free many pages).
const BODY: usize = 16 * 1024;
/// Envelopes sent, then drained.
const COUNT: usize = 1_000;

fn estimate(dir: &std::path::Path) -> backup::SpaceEstimate {
    let path = dir.join(STORE_FILE);
    let db = redb::Database::open(&path).unwrap();
    backup::estimate_reclaimable(&db, &path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_shrinks_the_file_after_deletions() {
    let mut dir = RelayDir::temp(|config| {
        config.limits.user_envelopes_per_sec = 1_000_000;
        config.limits.user_envelopes_burst = 1_000_000;
    })
    .unwrap();
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let body = vec![7u8; BODY];
    for _ in 0..COUNT / 50 {
        let batch = (0..50)
            .map(|_| alice.envelope_to(bob.address(), &body).sign(&alice.device))
            .collect();
        alice.send(batch).await.unwrap();
    }
    assert_eq!(bob.drain().await.len(), COUNT);
    drop(bob);
    drop(alice);
    // Until every ack is committed (the mailboxes are empty).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while crate::common::metric(&relay.metrics().render(), "tidings_mailbox_envelopes", &[])
        != Some(0.0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the acks were never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // `status` sees the unused space while it runs (not enough here to call compaction worth
    // a stop), once the acks are committed (estimates are reused for 5 minutes: the first is
    // taken once they are).
    let status = || async {
        let answer =
            tidings_relay::admin::request(dir.path(), tidings_relay::admin::Request::Status)
                .await
                .unwrap()
                .unwrap();
        match answer {
            tidings_relay::admin::Reply::Status(report) => report,
            other => panic!("not a status: {other:?}"),
        }
    };
    let report = status().await;
    assert!(
        report.reclaimable_bytes.unwrap() >= (COUNT * BODY / 2) as u64,
        "{:?}",
        report.reclaimable_bytes
    );
    assert_eq!(report.compact_would_help, Some(false));

    // While it runs, compaction is refused and nothing is touched.
    let size = |dir: &RelayDir| {
        std::fs::metadata(dir.path().join(STORE_FILE))
            .unwrap()
            .len()
    };
    let running_size = size(&dir);
    let error = backup::compact_data_dir(dir.path()).unwrap_err();
    assert!(matches!(error, BackupError::RelayRunning(_)), "{error}");
    assert_eq!(size(&dir), running_size);
    dir.stop(relay).await;

    let before = estimate(dir.path());
    assert!(
        before.reclaimable_bytes() >= (COUNT * BODY / 2) as u64,
        "the deleted mail shows as unused: {before:?}"
    );
    let compacted = backup::compact_data_dir(dir.path()).unwrap();
    let relay_file = compacted
        .iter()
        .find(|file| file.file == STORE_FILE)
        .unwrap();
    eprintln!("compacted: {compacted:?}");
    assert!(
        relay_file.after + (COUNT * BODY / 2) as u64 <= relay_file.before,
        "relay.redb shrank by at least half the deleted mail: {relay_file:?}"
    );
    assert_eq!(size(&dir), relay_file.after);
    let after = estimate(dir.path());
    assert!(
        after.reclaimable_bytes() < before.reclaimable_bytes() / 2,
        "{after:?}"
    );

    // The compacted data dir serves: a new message gets through.
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let mut carol = RawDevice::registered(&address).await;
    let mut dave = RawDevice::registered(&address).await;
    let raw = carol
        .envelope_to(dave.address(), b"after compaction")
        .sign(&carol.device);
    carol.send(vec![raw]).await.unwrap();
    assert_eq!(dave.drain().await.len(), 1);
    dir.stop(relay).await;
}

#[test]
fn compact_names_a_dir_that_is_not_a_data_dir() {
    let empty = tempfile::tempdir().unwrap();
    let error = backup::compact_data_dir(empty.path()).unwrap_err();
    assert!(matches!(error, BackupError::NotADataDir(_)), "{error}");
}
