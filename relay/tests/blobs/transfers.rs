//! Uploads and downloads that work: byte-equal round trips, resuming either way, dedupe,
//! a restart in the middle, and no plaintext on the relay's disk.

use tidings_protocol::{BlobAnswer, BlobId, BlobRequest, blob::MAX_BLOB_DATA_BYTES};
use tidings_relay::metrics::{Direction, TransferOutcome};

use super::{blob_files, partial_files, pseudo_random};
use crate::common::{BlobClient, RawDevice, restart_tweaked, start_tweaked};

#[tokio::test]
async fn an_uploaded_blob_downloads_byte_equal_whole_and_from_an_offset() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let sender = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&sender, &address);
    let bytes = pseudo_random(1_000_003, 1);
    let id = BlobId::of(&bytes);
    client.upload(&bytes).await.unwrap();
    assert_eq!(client.download(id, 0).await.unwrap(), bytes);
    assert_eq!(
        client.download(id, 300_001).await.unwrap(),
        bytes[300_001..]
    );
    // Another account's device on this relay reads it too (the id is the capability).
    let reader = RawDevice::registered(&address).await;
    let mut other = BlobClient::of(&reader, &address);
    assert_eq!(other.download(id, 0).await.unwrap(), bytes);
    assert_eq!(blob_files(relay.dir.path()), vec![id.to_string()]);
    assert!(partial_files(relay.dir.path()).is_empty());
    let metrics = &relay.relay.metrics().blobs;
    assert_eq!(
        metrics.transfers(Direction::Upload, TransferOutcome::Done),
        1
    );
    assert_eq!(
        metrics.transfers(Direction::Download, TransferOutcome::Done),
        3
    );
    let text = relay.relay.metrics().render();
    let series = |name: &str, labels: &[&str]| crate::common::metric(&text, name, labels);
    let upload = ["direction=\"Upload\""];
    assert_eq!(
        series(
            "tidings_blob_transfers_total",
            &[upload[0], "outcome=\"Done\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        series("tidings_blob_bytes_total", &upload),
        Some(bytes.len() as f64)
    );
    assert_eq!(series("tidings_blobs_stored", &[]), Some(1.0));
    assert_eq!(
        series("tidings_blobs_stored_bytes", &[]),
        Some(bytes.len() as f64)
    );
}

#[tokio::test]
async fn a_cut_download_resumes_from_the_bytes_it_got() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(5 * MAX_BLOB_DATA_BYTES + 11, 2);
    let id = BlobId::of(&bytes);
    client.upload(&bytes).await.unwrap();

    let mut stream = client.stream().await;
    stream
        .request(&BlobRequest::Download {
            id,
            relay: None,
            offset: 0,
        })
        .await;
    assert_eq!(
        stream.answer().await,
        Some(BlobAnswer::Sending {
            size: bytes.len() as u64,
            offset: 0
        })
    );
    let mut got = stream.data().await.unwrap();
    got.extend(stream.data().await.unwrap());
    drop(stream);
    assert!(got.len() < bytes.len());
    let rest = client.download(id, got.len() as u64).await.unwrap();
    got.extend(rest);
    assert_eq!(got, bytes);
}

#[tokio::test]
async fn an_interrupted_upload_resumes_where_the_relay_stands() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(3 * MAX_BLOB_DATA_BYTES + 5000, 3);
    let id = BlobId::of(&bytes);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    let sent = 2 * MAX_BLOB_DATA_BYTES + 100;
    for chunk in bytes[..sent].chunks(MAX_BLOB_DATA_BYTES) {
        assert!(stream.send(chunk).await);
    }
    stream.close().await;

    let (answer, mut stream) = client.start_upload(&bytes).await;
    let BlobAnswer::Ready { offset } = answer else {
        panic!("expected Ready, got {answer:?}");
    };
    assert_eq!(
        offset, sent as u64,
        "the relay kept every byte that arrived"
    );
    // Meanwhile nothing is visible but the partial copy.
    assert!(blob_files(relay.dir.path()).is_empty());
    assert_eq!(partial_files(relay.dir.path()).len(), 1);
    stream.finish(&bytes, offset).await.unwrap();
    assert_eq!(client.download(id, 0).await.unwrap(), bytes);
    assert!(partial_files(relay.dir.path()).is_empty());
    let metrics = &relay.relay.metrics().blobs;
    assert_eq!(
        metrics.transfers(Direction::Upload, TransferOutcome::Interrupted),
        1
    );
}

#[tokio::test]
async fn a_blob_held_already_is_stored_once_and_not_sent_again() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let first = RawDevice::registered(&address).await;
    let second = RawDevice::registered(&address).await;
    let bytes = pseudo_random(700_000, 4);
    BlobClient::of(&first, &address)
        .upload(&bytes)
        .await
        .unwrap();
    let mut client = BlobClient::of(&second, &address);
    let (answer, _stream) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Stored, "nothing to send");
    assert_eq!(blob_files(relay.dir.path()).len(), 1);
    let metrics = &relay.relay.metrics().blobs;
    assert_eq!(
        metrics.transfers(Direction::Upload, TransferOutcome::Deduplicated),
        1
    );
    assert_eq!(client.download(BlobId::of(&bytes), 0).await.unwrap(), bytes);
}

#[tokio::test]
async fn a_relay_restart_mid_upload_loses_nothing_and_the_upload_resumes() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(4 * MAX_BLOB_DATA_BYTES + 77, 5);
    let id = BlobId::of(&bytes);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    let sent = 2 * MAX_BLOB_DATA_BYTES;
    for chunk in bytes[..sent].chunks(MAX_BLOB_DATA_BYTES) {
        assert!(stream.send(chunk).await);
    }
    // The relay stops with the stream still open, once the bytes sent are in.
    let metrics = &relay.relay.metrics().blobs;
    for _ in 0..200 {
        if metrics.bytes_total(Direction::Upload) == sent as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.bytes_total(Direction::Upload), sent as u64);
    let crate::common::TestRelay { dir, relay } = relay;
    relay.shutdown().await;
    drop(stream);
    client.close();

    let restarted = restart_tweaked(dir.path(), |_| {}).await;
    let address = restarted.tcp_dial_addr().unwrap();
    let mut client = BlobClient::of(&device, &address);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    let BlobAnswer::Ready { offset } = answer else {
        panic!("expected Ready, got {answer:?}");
    };
    assert_eq!(offset, sent as u64);
    stream.finish(&bytes, offset).await.unwrap();
    assert_eq!(client.download(id, 0).await.unwrap(), bytes);
    restarted.shutdown().await;
}

#[tokio::test]
async fn the_relays_files_never_hold_the_plaintext() {
    use tidings_keys::media::{MediaKey, seal};

    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let marker = b"PLAINTEXT-MARKER-7f3a9c";
    let plain: Vec<u8> = marker.repeat(40_000);
    let sealed = |plain: &[u8]| {
        let mut cipher = Vec::new();
        seal(&MediaKey::generate(), &mut &plain[..], &mut cipher).unwrap();
        cipher
    };
    let whole = sealed(&plain);
    client.upload(&whole).await.unwrap();
    // And an upload left unfinished (its partial copy on disk).
    let partial = sealed(&plain[..500_000]);
    let (_, mut stream) = client.start_upload(&partial).await;
    assert!(stream.send(&partial[..MAX_BLOB_DATA_BYTES]).await);
    stream.close().await;
    let (answer, _stream) = client.start_upload(&partial).await;
    assert!(matches!(answer, BlobAnswer::Ready { offset } if offset > 0));

    let mut files = Vec::new();
    for name in blob_files(relay.dir.path()) {
        files.push(relay.dir.path().join("blobs").join(name));
    }
    for name in partial_files(relay.dir.path()) {
        files.push(relay.dir.path().join("blobs/partial").join(name));
    }
    assert_eq!(files.len(), 2);
    let contains = |haystack: &[u8]| haystack.windows(marker.len()).any(|w| w == marker);
    assert!(contains(&plain), "the check can see the marker");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.is_empty());
        assert!(!contains(&bytes), "{} holds plaintext", file.display());
    }
}
