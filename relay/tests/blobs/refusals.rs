//! What the relay refuses, and that a refused or cut upload leaves nothing visible: hash
//! mismatches, truncated uploads, quotas, sizes and strangers.

use tidings_protocol::{BlobAnswer, BlobId, ErrorCode, blob::MAX_BLOB_DATA_BYTES};
use tidings_relay::metrics::{Direction, StreamKind, TransferOutcome};

use super::{blob_files, partial_files, pseudo_random};
use crate::common::{BlobClient, RawDevice, restart_tweaked, start_tweaked};

fn refused(answer: &BlobAnswer) -> Option<ErrorCode> {
    match answer {
        BlobAnswer::Error(error) => Some(error.code),
        _ => None,
    }
}

#[tokio::test]
async fn bytes_that_do_not_hash_to_the_id_are_refused_and_nothing_stays() {
    let size = 600_000;
    let relay = start_tweaked(|config| config.blobs.user_quota_bytes = size + 10, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(size as usize, 6);
    let claimed = BlobId::of(b"some other blob");
    let (answer, mut stream) = client.start_upload_as(claimed, size).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    let error = stream.finish(&bytes, 0).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::HashMismatch);
    assert!(blob_files(relay.dir.path()).is_empty());
    assert!(partial_files(relay.dir.path()).is_empty());
    let missing = client.download(claimed, 0).await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::BlobNotFound);
    let metrics = &relay.relay.metrics().blobs;
    assert_eq!(
        metrics.transfers(Direction::Upload, TransferOutcome::HashMismatch),
        1
    );
    // The charge was given back: the honest upload of the same size fits the quota.
    client.upload(&bytes).await.unwrap();
}

#[tokio::test]
async fn a_truncated_upload_is_never_visible() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(3 * MAX_BLOB_DATA_BYTES, 7);
    let id = BlobId::of(&bytes);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    assert!(stream.send(&bytes[..MAX_BLOB_DATA_BYTES]).await);
    // The connection dies mid-upload.
    drop(stream);
    client.close();
    let mut client = BlobClient::of(&device, &address);
    for _ in 0..20 {
        let missing = client.download(id, 0).await.unwrap_err();
        assert_eq!(missing.code, ErrorCode::BlobNotFound);
        assert!(blob_files(relay.dir.path()).is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_quota_is_refused_before_any_byte_and_counts_unfinished_uploads() {
    let relay = start_tweaked(|config| config.blobs.user_quota_bytes = 100_000, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let big = pseudo_random(150_000, 8);
    let (answer, _stream) = client.start_upload(&big).await;
    assert_eq!(refused(&answer), Some(ErrorCode::QuotaExceeded));
    assert!(partial_files(relay.dir.path()).is_empty(), "no byte stored");

    let first = pseudo_random(60_000, 9);
    let (answer, mut stream) = client.start_upload(&first).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    assert!(stream.send(&first[..10_000]).await);
    stream.close().await;
    let second = pseudo_random(60_000, 10);
    let (answer, _stream) = client.start_upload(&second).await;
    assert_eq!(
        refused(&answer),
        Some(ErrorCode::QuotaExceeded),
        "the unfinished upload holds its declared size"
    );
    assert_eq!(partial_files(relay.dir.path()).len(), 1);
}

#[tokio::test]
async fn a_blob_over_the_size_limit_is_refused() {
    let relay = start_tweaked(|config| config.blobs.max_blob_bytes = 1000, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let (answer, _stream) = client.start_upload(&pseudo_random(1001, 11)).await;
    assert_eq!(refused(&answer), Some(ErrorCode::BlobTooLarge));
    assert!(partial_files(relay.dir.path()).is_empty());
    client.upload(&pseudo_random(1000, 12)).await.unwrap();
}

#[tokio::test]
async fn a_stranger_may_neither_store_nor_fetch() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let bytes = pseudo_random(1000, 13);
    BlobClient::of(&device, &address)
        .upload(&bytes)
        .await
        .unwrap();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let mut client = BlobClient::as_key(&stranger, &address);
    let (answer, _stream) = client.start_upload(&pseudo_random(1000, 14)).await;
    assert_eq!(refused(&answer), Some(ErrorCode::NotRegistered));
    let error = client.download(BlobId::of(&bytes), 0).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::NotRegistered);
    assert_eq!(blob_files(relay.dir.path()).len(), 1);
    assert!(partial_files(relay.dir.path()).is_empty());
}

#[tokio::test]
async fn a_data_frame_past_the_declared_size_is_refused_and_the_upload_kept() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(1000, 15);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    assert!(stream.send(&pseudo_random(1001, 16)).await);
    let answer = stream.answer().await.unwrap();
    assert_eq!(refused(&answer), Some(ErrorCode::Malformed));
    assert!(blob_files(relay.dir.path()).is_empty());
    client.upload(&bytes).await.unwrap();
}

#[tokio::test]
async fn below_the_disk_floor_uploads_are_refused_and_downloads_go_on() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let bytes = pseudo_random(5000, 17);
    let mut client = BlobClient::of(&device, &address);
    client.upload(&bytes).await.unwrap();
    client.close();
    let crate::common::TestRelay { dir, relay } = relay;
    relay.shutdown().await;

    let full = restart_tweaked(dir.path(), |config| {
        config.limits.min_free_disk_bytes = u64::MAX;
    })
    .await;
    let address = full.tcp_dial_addr().unwrap();
    let mut client = BlobClient::of(&device, &address);
    let (answer, _stream) = client.start_upload(&pseudo_random(5000, 18)).await;
    assert_eq!(refused(&answer), Some(ErrorCode::StorageFull));
    assert!(partial_files(dir.path()).is_empty());
    assert_eq!(client.download(BlobId::of(&bytes), 0).await.unwrap(), bytes);
    full.shutdown().await;
}

#[tokio::test]
async fn a_device_gets_its_share_of_transfers_and_no_more() {
    let relay = start_tweaked(|config| config.blobs.max_transfers_per_device = 2, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let mut open = Vec::new();
    for seed in 0..2 {
        let (answer, stream) = client.start_upload(&pseudo_random(1000, 40 + seed)).await;
        assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
        open.push(stream);
    }
    let mut third = client.stream().await;
    let request = tidings_protocol::BlobRequest::Upload {
        id: BlobId::of(b"third"),
        size: 5,
        offset: 0,
    };
    if third.try_request(&request).await {
        assert_eq!(third.answer().await, None, "the third stream is dropped");
    }
    assert_eq!(relay.relay.metrics().streams_refused(StreamKind::Blob), 1);
    // Another device is not held up by this one's share.
    let other = RawDevice::registered(&address).await;
    BlobClient::of(&other, &address)
        .upload(&pseudo_random(1000, 43))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_silent_upload_is_closed_after_the_idle_timeout_and_resumes() {
    let relay = start_tweaked(|config| config.network.stream_idle_secs = 1, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(2 * MAX_BLOB_DATA_BYTES, 19);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    assert!(stream.send(&bytes[..MAX_BLOB_DATA_BYTES]).await);
    // Then nothing: the relay closes the stream and keeps what came.
    assert_eq!(stream.answer().await, None);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    assert_eq!(
        answer,
        BlobAnswer::Ready {
            offset: MAX_BLOB_DATA_BYTES as u64
        }
    );
    stream
        .finish(&bytes, MAX_BLOB_DATA_BYTES as u64)
        .await
        .unwrap();
}
