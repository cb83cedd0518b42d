//! How long blobs live: references from stored envelopes keep them, garbage collection
//! deletes them after the retention time (row first, then file), unfinished uploads expire.

use std::time::Duration;

use tidings_protocol::{BlobId, BlobRef, BoundedVec, ErrorCode, client::SendOutcome};
use tidings_relay::RelayConfig;

use super::{blob_files, partial_files, pseudo_random};
use crate::common::{BlobClient, RawDevice, naming_blob, sent, start_tweaked};

/// No retention, no grace, no partial expiry; the timer never fires during a test (passes
/// are run by hand).
fn collect_at_once(config: &mut RelayConfig) {
    config.blobs.retention_days = 0;
    config.blobs.upload_grace_hours = 0;
    config.blobs.partial_expiry_hours = 0;
    config.blobs.gc_interval_secs = 3600;
}

/// A day of retention and no upload grace: a blob no envelope names is kept for the day.
fn keep_a_day(config: &mut RelayConfig) {
    config.blobs.retention_days = 1;
    config.blobs.upload_grace_hours = 0;
}

#[tokio::test]
async fn a_blob_lives_while_a_mailbox_entry_names_it_and_goes_after_retention() {
    let relay = start_tweaked(collect_at_once, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut sender = RawDevice::registered(&address).await;
    let mut recipient = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&sender, &address);
    let kept = pseudo_random(300_000, 20);
    let dropped = pseudo_random(200_000, 21);
    client.upload(&kept).await.unwrap();
    client.upload(&dropped).await.unwrap();
    let mut envelope = sender.envelope_to(recipient.address(), b"a photo");
    envelope.blobs = naming_blob(&kept, relay.relay.peer_id());
    let raw = envelope.sign(&sender.device);
    assert_eq!(sent(&mut sender, raw).await, SendOutcome::Accepted);

    assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (1, 0));
    let gone = client.download(BlobId::of(&dropped), 0).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::BlobNotFound);
    assert_eq!(
        blob_files(relay.dir.path()),
        vec![BlobId::of(&kept).to_string()]
    );
    assert_eq!(client.download(BlobId::of(&kept), 0).await.unwrap(), kept);

    // The recipient takes (and acks) the message: the last reference goes.
    assert_eq!(recipient.drain().await.len(), 1);
    let mut collected = (0, 0);
    for _ in 0..50 {
        collected = relay.relay.collect_blob_garbage().await.unwrap();
        if collected.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(collected, (1, 0));
    assert!(blob_files(relay.dir.path()).is_empty());
    let gone = client.download(BlobId::of(&kept), 0).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::BlobNotFound);
    assert_eq!(relay.relay.metrics().blobs.collected_total(), 2);
}

#[tokio::test]
async fn blobs_within_retention_stay_and_the_timer_collects_the_rest() {
    let relay = start_tweaked(keep_a_day, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let bytes = pseudo_random(10_000, 22);
    client.upload(&bytes).await.unwrap();
    assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (0, 0));
    assert_eq!(blob_files(relay.dir.path()).len(), 1);

    let quick = start_tweaked(
        |config| {
            collect_at_once(config);
            config.blobs.gc_interval_secs = 1;
        },
        None,
    )
    .await;
    let address = quick.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    BlobClient::of(&device, &address)
        .upload(&bytes)
        .await
        .unwrap();
    for _ in 0..100 {
        if blob_files(quick.dir.path()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        blob_files(quick.dir.path()).is_empty(),
        "the timer collected it"
    );
}

#[tokio::test]
async fn an_unfinished_upload_expires_and_gives_its_quota_back() {
    let relay = start_tweaked(
        |config| {
            collect_at_once(config);
            config.blobs.user_quota_bytes = 100_000;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let first = pseudo_random(80_000, 23);
    let (_, mut stream) = client.start_upload(&first).await;
    assert!(stream.send(&first[..1000]).await);
    stream.close().await;
    let mut collected = (0, 0);
    for _ in 0..50 {
        collected = relay.relay.collect_blob_garbage().await.unwrap();
        if collected.1 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(collected, (0, 1));
    assert!(partial_files(relay.dir.path()).is_empty());
    client.upload(&pseudo_random(80_000, 24)).await.unwrap();
}

#[tokio::test]
async fn group_mailbox_entries_and_outbox_entries_each_hold_a_reference() {
    use tidings_protocol::{Envelope, EnvelopeId, Kind, Recipient, UserId, group::Role};

    use crate::common::{genesis, group_envelope, member};

    let relay = start_tweaked(
        |config| {
            collect_at_once(config);
            config.federation.undeliverable_after_secs = 5;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    // A member nobody can find: its entries wait in the outbox until they bounce.
    let elsewhere = UserId::from_bytes([0xfe; 32]);
    let list = vec![
        member(alice.address().user, Role::Admin),
        member(bob.address().user, Role::Member),
        member(elsewhere, Role::Member),
    ];
    let v1 = genesis(&alice.account, list);
    let group = v1.descriptor.group;
    let control = group_envelope(&alice, group, Kind::GroupControl, v1.encode());
    assert_eq!(sent(&mut alice, control).await, SendOutcome::Accepted);
    bob.drain().await;

    let mut client = BlobClient::of(&alice, &address);
    let bytes = pseudo_random(50_000, 25);
    let id = BlobId::of(&bytes);
    client.upload(&bytes).await.unwrap();
    let raw = Envelope {
        id: EnvelopeId::random(),
        sender: alice.address(),
        recipient: Recipient::Group(group),
        sent_at_ms: 1,
        kind: Kind::Message,
        body: b"a video".to_vec(),
        blobs: BoundedVec::new(vec![BlobRef {
            id,
            relay: relay.relay.peer_id().to_string(),
            size: bytes.len() as u64,
        }])
        .unwrap(),
    }
    .sign(&alice.device);
    assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
    assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (0, 0));
    // Bob takes his copy; the outbox entry still holds the blob.
    assert_eq!(bob.drain().await.len(), 1);
    assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (0, 0));
    assert_eq!(client.download(id, 0).await.unwrap(), bytes);
    // The outbox entry bounces: the last reference goes.
    let mut collected = (0, 0);
    for _ in 0..300 {
        collected = relay.relay.collect_blob_garbage().await.unwrap();
        if collected.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(collected, (1, 0), "collected once the outbox entry went");
    assert!(blob_files(relay.dir.path()).is_empty());
}

#[tokio::test]
async fn a_message_stored_before_its_blob_arrived_still_holds_it() {
    let relay = start_tweaked(collect_at_once, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut sender = RawDevice::registered(&address).await;
    let mut recipient = RawDevice::registered(&address).await;
    let bytes = pseudo_random(40_000, 26);
    let id = BlobId::of(&bytes);
    let mut envelope = sender.envelope_to(recipient.address(), b"sent before the upload");
    envelope.blobs = naming_blob(&bytes, relay.relay.peer_id());
    let raw = envelope.sign(&sender.device);
    assert_eq!(sent(&mut sender, raw).await, SendOutcome::Accepted);
    let mut client = BlobClient::of(&sender, &address);
    client.upload(&bytes).await.unwrap();
    assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (0, 0));
    assert_eq!(client.download(id, 0).await.unwrap(), bytes);
    assert_eq!(recipient.drain().await.len(), 1);
    let mut collected = (0, 0);
    for _ in 0..50 {
        collected = relay.relay.collect_blob_garbage().await.unwrap();
        if collected.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(collected, (1, 0));
}

#[tokio::test]
async fn uploading_a_held_blob_again_gives_its_sender_the_grace_time_too() {
    let relay = start_tweaked(keep_a_day, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let first = RawDevice::registered(&address).await;
    let again = pseudo_random(20_000, 27);
    let alone = pseudo_random(20_000, 28);
    let mut client = BlobClient::of(&first, &address);
    client.upload(&again).await.unwrap();
    client.upload(&alone).await.unwrap();
    client.close();
    let crate::common::TestRelay { dir, relay } = relay;
    relay.shutdown().await;

    // Now both are past their grace and retention.
    let relay = crate::common::restart_tweaked(dir.path(), |config| {
        config.blobs.retention_days = 0;
        config.blobs.upload_grace_hours = 1;
        config.blobs.gc_interval_secs = 3600;
    })
    .await;
    let address = relay.tcp_dial_addr().unwrap();
    let second = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&second, &address);
    let (answer, _stream) = client.start_upload(&again).await;
    assert_eq!(answer, tidings_protocol::BlobAnswer::Stored);
    assert_eq!(relay.collect_blob_garbage().await.unwrap(), (1, 0));
    assert_eq!(blob_files(dir.path()), vec![BlobId::of(&again).to_string()]);
    assert_eq!(client.download(BlobId::of(&again), 0).await.unwrap(), again);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_profile_picture_lives_while_the_newest_profile_names_it() {
    use tidings_protocol::{
        client::{Request, Response},
        profile::SealedProfile,
    };

    let relay = start_tweaked(collect_at_once, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&alice, &address);
    let picture = |bytes: &[u8]| BlobRef {
        id: BlobId::of(bytes),
        relay: relay.relay.peer_id().to_string(),
        size: bytes.len() as u64,
    };
    let user = alice.address().user;
    let first = pseudo_random(40_000, 26);
    let second = pseudo_random(30_000, 27);
    client.upload(&first).await.unwrap();
    for (version, bytes) in [(1, &first), (2, &second)] {
        if version == 2 {
            client.upload(&second).await.unwrap();
        }
        let profile = SealedProfile {
            user,
            version,
            picture: Some(picture(bytes)),
            ciphertext: vec![7; 100],
        };
        let answer = alice
            .request(Request::PutProfile {
                profile: Box::new(profile),
            })
            .await
            .unwrap();
        assert!(matches!(answer, Response::Profile { profile: Some(_) }));
        if version == 1 {
            // The profile's reference keeps the picture through a collection.
            assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (0, 0));
            assert_eq!(client.download(BlobId::of(&first), 0).await.unwrap(), first);
        }
    }
    // Version 2 names another picture: the first loses its last reference and goes.
    assert_eq!(relay.relay.collect_blob_garbage().await.unwrap(), (1, 0));
    let gone = client.download(BlobId::of(&first), 0).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::BlobNotFound);
    assert_eq!(
        client.download(BlobId::of(&second), 0).await.unwrap(),
        second
    );
}
