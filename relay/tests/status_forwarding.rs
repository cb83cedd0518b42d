//! Statuses forwarded between real relays on loopback, durably: a viewer's relay that is down
//! when the status is posted still gets it when it comes back (after more failed attempts
//! than the old five-try forwarder made), the poster's relay restarted before it could
//! forward still forwards after the restart, and a status that expires first is dropped from
//! the work list, never sent. The retry floor is shortened in the config (no real minutes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::RawDevice;
use tidings_protocol::{
    BoundedVec, EnvelopeId, UserId,
    client::{Request, Response},
    status::{StatusItem, StatusPost},
};
use tidings_relay::{RunningRelay, testing::Network};

const HOUR_MS: u64 = 60 * 60 * 1000;

/// Two relays whose status forwarder retries every 50 to 200 ms.
async fn two_relays() -> Network {
    Network::start(2, |config| {
        config.status.forward_retry_min_ms = 50;
        config.status.forward_retry_max_ms = 200;
    })
    .await
    .unwrap()
}

fn relay(net: &Network, index: usize) -> &RunningRelay {
    net.relay(index).expect("relay running")
}

/// A poster at relay 0 and a viewer at relay 1; relay 0 has looked the viewer's home up.
async fn poster_and_viewer(net: &Network) -> (RawDevice, RawDevice) {
    let poster = RawDevice::registered(&relay(net, 0).dial_addrs()[0]).await;
    let viewer = RawDevice::registered(&relay(net, 1).dial_addrs()[0]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for (at, user) in [(0, viewer.address().user), (1, poster.address().user)] {
        while relay(net, at).lookup_home(user).await.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "home not found");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (poster, viewer)
}

async fn post_to(poster: &mut RawDevice, viewer: UserId, expires_at_ms: u64) -> StatusPost {
    let post = StatusPost {
        id: EnvelopeId::random(),
        audience: BoundedVec::new(vec![viewer]).unwrap(),
        expires_at_ms,
        body: b"megolm".to_vec(),
        blobs: Default::default(),
    };
    let answer = poster
        .request(Request::PostStatus(Box::new(post.clone())))
        .await;
    assert_eq!(answer, Ok(Response::StatusPosted { new: true }));
    post
}

async fn statuses(device: &mut RawDevice) -> Vec<StatusItem> {
    match device
        .request(Request::GetStatuses { after_ms: 0 })
        .await
        .unwrap()
    {
        Response::Statuses { items } => items.into_vec(),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The viewer's device, connected again to relay 1 (after it restarted), until it is handed
/// a status or 20 s pass.
async fn viewer_gets(net: &Network, viewer: &RawDevice) -> Vec<StatusItem> {
    let address = relay(net, 1).dial_addrs()[0].clone();
    let mut device =
        RawDevice::connect_as(&address, viewer.account.clone(), viewer.device.clone()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let items = statuses(&mut device).await;
        if !items.is_empty() || tokio::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pending(net: &Network) -> u64 {
    relay(net, 0).pending_status_forwards().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_relay_down_at_posting_gets_the_status_when_it_is_back() {
    let mut net = two_relays().await;
    let (mut poster, viewer) = poster_and_viewer(&net).await;
    net.stop(1).await.unwrap();

    let now = relay(&net, 0).status_clock().now_ms();
    let post = post_to(&mut poster, viewer.address().user, now + HOUR_MS).await;
    assert_eq!(
        pending(&net).await,
        1,
        "one forward entry, written with the status"
    );
    // At 50..200 ms a try, three seconds is well over the five tries the forwarder used to
    // give up after; the entry is still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pending(&net).await,
        1,
        "still waiting for the viewer's relay"
    );

    net.restart(1).await.unwrap();
    let items = viewer_gets(&net, &viewer).await;
    assert_eq!(items.len(), 1, "forwarded once the relay was back");
    assert_eq!(items[0].id, post.id);
    assert_eq!(items[0].poster, poster.address());
    assert_eq!(
        pending(&net).await,
        0,
        "the entry goes once the relay took it"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_posters_relay_restarted_before_forwarding_still_forwards() {
    let mut net = two_relays().await;
    let (mut poster, viewer) = poster_and_viewer(&net).await;
    net.stop(1).await.unwrap();
    let now = relay(&net, 0).status_clock().now_ms();
    let post = post_to(&mut poster, viewer.address().user, now + HOUR_MS).await;
    drop(poster);

    net.stop(0).await.unwrap();
    net.restart(0).await.unwrap();
    assert_eq!(
        pending(&net).await,
        1,
        "the forward entry survived the restart"
    );
    net.restart(1).await.unwrap();
    let items = viewer_gets(&net, &viewer).await;
    assert_eq!(items.len(), 1, "forwarded after the restart");
    assert_eq!(items[0].id, post.id);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_expired_before_forwarding_is_dropped_not_sent() {
    let mut net = two_relays().await;
    let (mut poster, viewer) = poster_and_viewer(&net).await;
    net.stop(1).await.unwrap();
    let clock = relay(&net, 0).status_clock();
    post_to(&mut poster, viewer.address().user, clock.now_ms() + HOUR_MS).await;
    assert_eq!(pending(&net).await, 1);

    // Only the poster's relay's clock moves: the viewer's relay would still take it.
    clock.advance(HOUR_MS + 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pending(&net).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "entry not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.restart(1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        relay(&net, 1).stored_statuses().await.unwrap(),
        0,
        "never sent"
    );
    let address = relay(&net, 1).dial_addrs()[0].clone();
    let mut device =
        RawDevice::connect_as(&address, viewer.account.clone(), viewer.device.clone()).await;
    assert!(statuses(&mut device).await.is_empty());
    assert_eq!(relay(&net, 0).sweep_statuses().await.unwrap(), 1);
    net.shutdown().await;
}
