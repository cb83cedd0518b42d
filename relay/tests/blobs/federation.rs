//! Blobs held by another relay: fetched once (concurrent downloads share the fetch), hash
//! checked and stored as a local blob, then served; relays fetch within a byte rate.

use std::time::{Duration, Instant};

use tidings_protocol::{
    BlobAnswer, BlobId, BlobRequest, ErrorCode, blob::BLOB_FEDERATION_PROTOCOL,
};
use tidings_relay::metrics::{Direction, TransferOutcome};

use super::{
    blob_files, pseudo_random,
    stand_ins::{cutting_relay, dht_only_relay},
};
use crate::common::{BlobClient, RawDevice, start_relays, start_relays_tweaked};

#[tokio::test]
async fn a_blob_held_elsewhere_is_fetched_once_and_then_served_from_here() {
    let relays = start_relays(2).await;
    let (home, near) = (&relays[0], &relays[1]);
    let home_address = home.relay.tcp_dial_addr().unwrap();
    let near_address = near.relay.tcp_dial_addr().unwrap();
    let sender = RawDevice::registered(&home_address).await;
    let bytes = pseudo_random(3_000_000, 30);
    let id = BlobId::of(&bytes);
    BlobClient::of(&sender, &home_address)
        .upload(&bytes)
        .await
        .unwrap();

    let first = RawDevice::registered(&near_address).await;
    let second = RawDevice::registered(&near_address).await;
    let origin = Some(home.relay.peer_id().to_string());
    let mut a = BlobClient::of(&first, &near_address);
    let mut b = BlobClient::of(&second, &near_address);
    let (got_a, got_b) = tokio::join!(
        a.download_from(id, origin.clone(), 0),
        b.download_from(id, origin.clone(), 0)
    );
    assert_eq!(got_a.unwrap(), bytes);
    assert_eq!(got_b.unwrap(), bytes);
    // Served locally now, whoever asks and however.
    assert_eq!(a.download(id, 1000).await.unwrap(), bytes[1000..]);
    assert_eq!(b.download_from(id, origin, 0).await.unwrap(), bytes);
    assert_eq!(blob_files(near.dir.path()), vec![id.to_string()]);
    let fetched = &near.relay.metrics().blobs;
    assert_eq!(
        fetched.transfers(Direction::Fetch, TransferOutcome::Done),
        1
    );
    let served = &home.relay.metrics().blobs;
    assert_eq!(served.transfers(Direction::Serve, TransferOutcome::Done), 1);
}

#[tokio::test]
async fn a_blob_whose_relay_is_known_by_id_only_is_fetched_after_a_dht_walk() {
    // The blob's relay joins through relay 0 while relay 1 refuses it: relay 1 then knows it
    // by id only, as relays in a network larger than their routing tables know most others.
    let relays = start_relays(2).await;
    let (hub, near) = (&relays[0], &relays[1]);
    let hub_address = hub.relay.tcp_dial_addr().unwrap();
    let near_address = near.relay.tcp_dial_addr().unwrap();
    let bytes = pseudo_random(200_000, 32);
    let id = BlobId::of(&bytes);
    // Registered first: publishing the device's home record walks the DHT too.
    let reader = RawDevice::registered(&near_address).await;
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let stranger = keypair.public().to_peer_id();
    near.relay.network().set_blocked(stranger, true).await;
    let origin = dht_only_relay(&hub_address, keypair, bytes.clone()).await;
    near.relay.network().set_blocked(stranger, false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.relay.network().routing_peers().await < 2 {
        assert!(
            Instant::now() < deadline,
            "the hub never listed the blob's relay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let got = BlobClient::of(&reader, &near_address)
        .download_from(id, Some(origin.to_string()), 0)
        .await
        .unwrap();
    assert_eq!(got, bytes);
    let fetched = &near.relay.metrics().blobs;
    assert_eq!(
        fetched.transfers(Direction::Fetch, TransferOutcome::Done),
        1
    );
}

#[tokio::test]
async fn a_blob_its_relay_does_not_hold_is_not_found() {
    let relays = start_relays(2).await;
    let (home, near) = (&relays[0], &relays[1]);
    let near_address = near.relay.tcp_dial_addr().unwrap();
    let device = RawDevice::registered(&near_address).await;
    let mut client = BlobClient::of(&device, &near_address);
    let id = BlobId::of(b"never uploaded");
    let origin = Some(home.relay.peer_id().to_string());
    let error = client.download_from(id, origin, 0).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::BlobNotFound);
    assert!(blob_files(near.dir.path()).is_empty());
    // A relay id that is no peer id is refused as such.
    let error = client
        .download_from(id, Some("not a peer id".into()), 0)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Malformed);
}

#[tokio::test]
async fn relays_only_download_and_within_their_byte_rate() {
    let relays = start_relays_tweaked(2, |config| {
        config.blobs.federation_bytes_per_sec = 1024 * 1024;
    })
    .await;
    let (home, near) = (&relays[0], &relays[1]);
    let home_address = home.relay.tcp_dial_addr().unwrap();
    let near_address = near.relay.tcp_dial_addr().unwrap();
    let sender = RawDevice::registered(&home_address).await;
    let bytes = pseudo_random(3 * 1024 * 1024, 31);
    let id = BlobId::of(&bytes);
    let mut client = BlobClient::of(&sender, &home_address);
    client.upload(&bytes).await.unwrap();

    // Uploads on the relays' protocol are refused.
    let mut stream = client.stream_on(BLOB_FEDERATION_PROTOCOL).await;
    stream
        .request(&BlobRequest::Upload {
            id: BlobId::of(b"x"),
            size: 1,
            offset: 0,
        })
        .await;
    assert!(matches!(
        stream.answer().await,
        Some(BlobAnswer::Error(error)) if error.code == ErrorCode::Malformed
    ));

    // 3 MiB at 1 MiB/s with a 1 MiB burst: about two seconds.
    let reader = RawDevice::registered(&near_address).await;
    let started = Instant::now();
    let got = BlobClient::of(&reader, &near_address)
        .download_from(id, Some(home.relay.peer_id().to_string()), 0)
        .await
        .unwrap();
    assert_eq!(got, bytes);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
async fn a_fetch_cut_short_goes_on_from_where_it_stopped() {
    use tidings_protocol::blob::MAX_BLOB_DATA_BYTES;

    let relays = start_relays(1).await;
    let near = &relays[0];
    let address = near.relay.tcp_dial_addr().unwrap();
    let bytes = pseudo_random(4 * MAX_BLOB_DATA_BYTES, 32);
    let id = BlobId::of(&bytes);
    let cut = 2 * MAX_BLOB_DATA_BYTES;
    let (origin, asked) = cutting_relay(&address, bytes.clone(), cut);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let device = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&device, &address);
    let error = client
        .download_from(id, Some(origin.to_string()), 0)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable, "{error}");
    assert!(blob_files(near.dir.path()).is_empty());
    let got = client
        .download_from(id, Some(origin.to_string()), 0)
        .await
        .unwrap();
    assert_eq!(got, bytes);
    assert_eq!(*asked.lock().unwrap(), vec![0, cut as u64]);
}

#[tokio::test]
async fn one_user_keeps_at_most_two_fetches_running_and_others_still_get_theirs() {
    // 1 MiB/s between the relays: each 2 MiB fetch runs for a while.
    let relays = start_relays_tweaked(2, |config| {
        config.blobs.federation_bytes_per_sec = 1024 * 1024;
    })
    .await;
    let (home, near) = (&relays[0], &relays[1]);
    let home_address = home.relay.tcp_dial_addr().unwrap();
    let near_address = near.relay.tcp_dial_addr().unwrap();
    let sender = RawDevice::registered(&home_address).await;
    let mut uploader = BlobClient::of(&sender, &home_address);
    let mut ids = Vec::new();
    let mut blobs = Vec::new();
    for seed in 0..4 {
        let bytes = pseudo_random(2 * 1024 * 1024, 40 + seed);
        uploader.upload(&bytes).await.unwrap();
        ids.push(BlobId::of(&bytes));
        blobs.push(bytes);
    }
    let origin = Some(home.relay.peer_id().to_string());
    let mallory = RawDevice::registered(&near_address).await;
    let honest = RawDevice::registered(&near_address).await;

    // Mallory starts two fetches; while they run, her third is refused at once.
    let mut running = Vec::new();
    for id in &ids[..2] {
        let mut client = BlobClient::of(&mallory, &near_address);
        let (stream, answer) = client
            .open_with(&BlobRequest::Download {
                id: *id,
                relay: origin.clone(),
                offset: 0,
            })
            .await;
        assert!(matches!(answer, BlobAnswer::Fetching { .. }), "{answer:?}");
        running.push((client, stream));
    }
    let refused = BlobClient::of(&mallory, &near_address)
        .download_from(ids[2], origin.clone(), 0)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::RateLimited, "{refused:?}");
    // Another user's download is not held up by Mallory's.
    let got = BlobClient::of(&honest, &near_address)
        .download_from(ids[3], origin.clone(), 0)
        .await
        .unwrap();
    assert_eq!(got, blobs[3]);
}

#[tokio::test]
async fn fetched_copies_stay_within_the_relays_own_quota() {
    let relays = start_relays_tweaked(2, |config| {
        config.blobs.fetched_quota_bytes = 300_000;
    })
    .await;
    let (home, near) = (&relays[0], &relays[1]);
    let home_address = home.relay.tcp_dial_addr().unwrap();
    let near_address = near.relay.tcp_dial_addr().unwrap();
    let sender = RawDevice::registered(&home_address).await;
    let mut uploader = BlobClient::of(&sender, &home_address);
    let first = pseudo_random(200_000, 50);
    let second = pseudo_random(200_000, 51);
    uploader.upload(&first).await.unwrap();
    uploader.upload(&second).await.unwrap();

    let reader = RawDevice::registered(&near_address).await;
    let mut client = BlobClient::of(&reader, &near_address);
    let origin = Some(home.relay.peer_id().to_string());
    let got = client.download_from(BlobId::of(&first), origin.clone(), 0);
    assert_eq!(got.await.unwrap(), first);
    let error = client
        .download_from(BlobId::of(&second), origin, 0)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::QuotaExceeded, "{error}");
    assert_eq!(
        blob_files(near.dir.path()),
        vec![BlobId::of(&first).to_string()]
    );
}
