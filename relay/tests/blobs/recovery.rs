//! After a crash: files no row names are deleted at start, rows whose file is gone are
//! dropped (their charge given back), whole blobs stay.

use tidings_protocol::{BlobId, ErrorCode};

use super::{blob_files, partial_files, pseudo_random};
use crate::common::{BlobClient, RawDevice, TestRelay, restart_tweaked, start_tweaked};

#[tokio::test]
async fn at_start_files_without_rows_go_and_rows_without_files_are_dropped() {
    let quota = 20_000;
    let relay = start_tweaked(|config| config.blobs.user_quota_bytes = quota, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let kept = pseudo_random(10_000, 50);
    let lost = pseudo_random(10_000, 51);
    client.upload(&kept).await.unwrap();
    client.upload(&lost).await.unwrap();
    client.close();
    let TestRelay { dir, relay } = relay;
    relay.shutdown().await;

    // What a crash between rename and commit leaves, a partial whose row never committed,
    // and a blob file lost outside the relay.
    let blobs = dir.path().join("blobs");
    let stray = BlobId::of(b"stray");
    std::fs::write(blobs.join(stray.to_string()), b"stray").unwrap();
    std::fs::write(blobs.join("partial").join("someone-something"), b"half").unwrap();
    std::fs::remove_file(blobs.join(BlobId::of(&lost).to_string())).unwrap();

    let restarted = restart_tweaked(dir.path(), |config| {
        config.blobs.user_quota_bytes = quota;
    })
    .await;
    assert_eq!(blob_files(dir.path()), vec![BlobId::of(&kept).to_string()]);
    assert!(partial_files(dir.path()).is_empty());
    let address = restarted.tcp_dial_addr().unwrap();
    let mut client = BlobClient::of(&device, &address);
    assert_eq!(client.download(BlobId::of(&kept), 0).await.unwrap(), kept);
    for id in [BlobId::of(&lost), stray] {
        let error = client.download(id, 0).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::BlobNotFound);
    }
    // The dropped row's charge was given back: another blob of its size fits the quota.
    client.upload(&pseudo_random(10_000, 52)).await.unwrap();
    restarted.shutdown().await;
}
