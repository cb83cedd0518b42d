//! A revoked device: its mailbox entries give their blob references back, and its blob
//! streams are refused like a stranger's.

use std::time::Duration;

use tidings_protocol::{BlobAnswer, BlobId, ErrorCode, client::SendOutcome};

use super::pseudo_random;
use crate::{
    common::{BlobClient, RawDevice, naming_blob, sent, start_tweaked},
    support::{another_device, list, publish, registered},
};

#[tokio::test]
async fn revoking_a_device_gives_back_its_references_and_closes_its_blob_access() {
    let relay = start_tweaked(
        |config| {
            config.blobs.retention_days = 0;
            config.blobs.upload_grace_hours = 0;
            config.blobs.gc_interval_secs = 3600;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut phone = RawDevice::registered(&address).await;
    let mut laptop = another_device(&address, &phone).await;
    let both = list(&phone.account, 1, &[&phone.device, &laptop.device]);
    publish(&mut phone, both).await.unwrap();
    registered(&mut laptop).await;

    let mut bob = RawDevice::registered(&address).await;
    let bytes = pseudo_random(30_000, 70);
    let id = BlobId::of(&bytes);
    BlobClient::of(&bob, &address).upload(&bytes).await.unwrap();
    let mut envelope = bob.envelope_to(laptop.address(), b"for the laptop");
    envelope.blobs = naming_blob(&bytes, relay.relay.peer_id());
    let raw = envelope.sign(&bob.device);
    assert_eq!(sent(&mut bob, raw).await, SendOutcome::Accepted);
    assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (0, 0));
    let mut laptop_blobs = BlobClient::of(&laptop, &address);
    assert_eq!(laptop_blobs.download(id, 0).await.unwrap(), bytes);

    let without = list(&phone.account, 2, &[&phone.device]);
    assert!(publish(&mut phone, without).await.is_ok());
    let mut collected = (0, 0);
    for _ in 0..50 {
        collected = relay.relay.collect_blob_garbage().await.unwrap();
        if collected.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        collected,
        (1, 0),
        "the revoked mailbox held the last reference"
    );
    let (answer, _stream) = laptop_blobs.start_upload(&pseudo_random(100, 71)).await;
    assert!(
        matches!(answer, BlobAnswer::Error(error) if error.code == ErrorCode::NotRegistered),
        "a revoked device may not upload"
    );
}
