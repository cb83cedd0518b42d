//! Devices and relays that misbehave on the blob protocols: bad frames, oversized frames,
//! two streams on one upload, and a relay that serves bytes not matching the id.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use tidings_protocol::{
    BlobAnswer, BlobData, BlobId, BlobRequest, ErrorCode, blob::MAX_BLOB_DATA_BYTES, framing,
};
use tidings_relay::metrics::{Direction, TransferOutcome};

use super::{blob_files, partial_files, pseudo_random, stand_ins::blob_peer};
use crate::common::{BlobClient, RawDevice, start_tweaked};

fn refused(answer: Option<BlobAnswer>) -> Option<ErrorCode> {
    match answer {
        Some(BlobAnswer::Error(error)) => Some(error.code),
        _ => None,
    }
}

#[tokio::test]
async fn garbage_and_oversized_frames_are_refused_without_a_panic() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);

    // A first frame that is no request.
    let mut stream = client.stream().await;
    stream.send(b"not a request").await;
    assert_eq!(refused(stream.answer().await), Some(ErrorCode::Malformed));

    // A data frame over the bound: refused, the upload kept for a resume.
    let bytes = pseudo_random(2 * MAX_BLOB_DATA_BYTES, 60);
    let (answer, mut stream) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    assert!(stream.send(&bytes[..MAX_BLOB_DATA_BYTES + 100]).await);
    assert_eq!(refused(stream.answer().await), Some(ErrorCode::Malformed));
    assert!(blob_files(relay.dir.path()).is_empty());
    client.upload(&bytes).await.unwrap();

    // A download from past the end.
    let mut stream = client.stream().await;
    stream
        .request(&BlobRequest::Download {
            id: BlobId::of(&bytes),
            relay: None,
            offset: bytes.len() as u64 + 1,
        })
        .await;
    assert_eq!(refused(stream.answer().await), Some(ErrorCode::Malformed));
}

#[tokio::test]
async fn a_second_stream_on_the_same_upload_is_turned_away() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(100_000, 61);
    let (answer, mut first) = client.start_upload(&bytes).await;
    assert_eq!(answer, BlobAnswer::Ready { offset: 0 });
    let mut second = client.stream().await;
    second
        .request(&BlobRequest::Upload {
            id: BlobId::of(&bytes),
            size: bytes.len() as u64,
            offset: 0,
        })
        .await;
    assert_eq!(refused(second.answer().await), Some(ErrorCode::Unavailable));
    first.finish(&bytes, 0).await.unwrap();
    assert_eq!(client.download(BlobId::of(&bytes), 0).await.unwrap(), bytes);
}

#[tokio::test]
async fn a_relay_serving_bytes_that_do_not_match_the_id_leaves_nothing_here() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();

    // A peer posing as the blob's relay: it answers every fetch with made-up bytes.
    let (rogue, mut incoming) = blob_peer(&address);
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            let (mut reader, mut writer) = stream.split();
            let mut buf = Vec::new();
            let _ = framing::read_frame(&mut reader, &mut buf).await;
            let size = 3 * MAX_BLOB_DATA_BYTES as u64;
            let _ =
                framing::write_frame(&mut writer, &BlobAnswer::Sending { size, offset: 0 }).await;
            for _ in 0..3 {
                let data = BlobData {
                    bytes: vec![0x5a; MAX_BLOB_DATA_BYTES],
                };
                let _ = framing::write_frame(&mut writer, &data).await;
            }
            let _ = writer.close().await;
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let id = BlobId::of(b"what the message names");
    let error = client
        .download_from(id, Some(rogue.to_string()), 0)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::HashMismatch);
    assert!(blob_files(relay.dir.path()).is_empty());
    assert!(partial_files(relay.dir.path()).is_empty());
    let metrics = &relay.relay.metrics().blobs;
    assert_eq!(
        metrics.transfers(Direction::Fetch, TransferOutcome::HashMismatch),
        1
    );
}
