//! Status updates at a relay on loopback: only the audience (and the poster) fetch a status,
//! it is stored once, the relay refuses expiries past 24 hours or already gone, and the sweep
//! deletes it at expiry whether or not anyone fetched it (the clock advanced, not slept).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{RawDevice, start_relay};
use tidings_protocol::{
    BoundedVec, EnvelopeId, ErrorCode, UserId,
    client::{Request, Response},
    status::{STATUS_CLOCK_SKEW_MS, STATUS_LIFETIME_MS, StatusItem, StatusPost},
};
use tidings_relay::RegistrationPolicy;

const HOUR_MS: u64 = 60 * 60 * 1000;

fn post(audience: &[UserId], expires_at_ms: u64, body: &[u8]) -> StatusPost {
    StatusPost {
        id: EnvelopeId::random(),
        audience: BoundedVec::new(audience.to_vec()).unwrap(),
        expires_at_ms,
        body: body.to_vec(),
        blobs: Default::default(),
    }
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

#[tokio::test]
async fn only_the_audience_fetches_a_status_and_it_is_gone_at_expiry() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.dial_addrs()[0].clone();
    let mut poster = RawDevice::registered(&address).await;
    let mut friend = RawDevice::registered(&address).await;
    let mut other = RawDevice::registered(&address).await;
    let mut stranger = RawDevice::registered(&address).await;
    let clock = relay.relay.status_clock();

    let audience = [friend.address().user, other.address().user];
    let poster_address = poster.address();
    let status = post(&audience, clock.now_ms() + STATUS_LIFETIME_MS, b"megolm");
    let answer = poster
        .request(Request::PostStatus(Box::new(status.clone())))
        .await;
    assert_eq!(answer, Ok(Response::StatusPosted { new: true }));
    let again = poster
        .request(Request::PostStatus(Box::new(status.clone())))
        .await;
    assert_eq!(again, Ok(Response::StatusPosted { new: false }));
    assert_eq!(
        relay.relay.stored_statuses().await.unwrap(),
        1,
        "stored once"
    );

    for viewer in [&mut friend, &mut other, &mut poster] {
        let items = statuses(viewer).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, status.id);
        assert_eq!(items[0].body, b"megolm");
        assert_eq!(items[0].poster, poster_address);
    }
    assert!(
        statuses(&mut stranger).await.is_empty(),
        "not in the audience"
    );

    // Nobody fetched it again; 23 hours on it is still there, past 24 it is gone even
    // before the sweep (not handed out), and the sweep deletes the stored copy.
    clock.advance(23 * HOUR_MS);
    assert_eq!(relay.relay.sweep_statuses().await.unwrap(), 0);
    assert_eq!(statuses(&mut friend).await.len(), 1);
    clock.advance(HOUR_MS + 1);
    assert!(statuses(&mut other).await.is_empty());
    assert_eq!(relay.relay.sweep_statuses().await.unwrap(), 1);
    assert_eq!(relay.relay.stored_statuses().await.unwrap(), 0);
    assert!(statuses(&mut poster).await.is_empty());
}

#[tokio::test]
async fn expiry_past_or_beyond_a_day_is_refused() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.dial_addrs()[0].clone();
    let mut poster = RawDevice::registered(&address).await;
    let friend = RawDevice::connect(&address).await;
    let audience = [friend.address().user];
    let now = relay.relay.status_clock().now_ms();

    let too_far = post(
        &audience,
        now + STATUS_LIFETIME_MS + STATUS_CLOCK_SKEW_MS + HOUR_MS,
        b"x",
    );
    let past = post(&audience, now.saturating_sub(1), b"x");
    for refused in [too_far, past] {
        let answer = poster.request(Request::PostStatus(Box::new(refused))).await;
        assert_eq!(
            answer.map_err(|error| error.code),
            Err(ErrorCode::Malformed)
        );
    }
    assert_eq!(relay.relay.stored_statuses().await.unwrap(), 0);
}

#[tokio::test]
async fn a_status_id_is_the_posters_own() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.dial_addrs()[0].clone();
    let mut poster = RawDevice::registered(&address).await;
    let mut thief = RawDevice::registered(&address).await;
    let now = relay.relay.status_clock().now_ms();
    let status = post(&[thief.address().user], now + HOUR_MS, b"original");
    let answer = poster
        .request(Request::PostStatus(Box::new(status.clone())))
        .await;
    assert_eq!(answer, Ok(Response::StatusPosted { new: true }));
    let mut forged = status.clone();
    forged.body = b"replaced".to_vec();
    let answer = thief.request(Request::PostStatus(Box::new(forged))).await;
    assert_eq!(answer.map_err(|error| error.code), Err(ErrorCode::IdReused));
    assert_eq!(statuses(&mut thief).await[0].body, b"original");
}

#[tokio::test]
async fn a_status_counts_its_blob_until_the_sweep_after_its_expiry() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.dial_addrs()[0].clone();
    let mut poster = RawDevice::registered(&address).await;
    let friend = RawDevice::connect(&address).await;
    let clock = relay.relay.status_clock();
    let blob = tidings_protocol::BlobRef {
        id: tidings_protocol::BlobId::of(b"a sealed picture"),
        relay: relay.relay.peer_id().to_string(),
        size: 16,
    };
    let mut status = post(&[friend.address().user], clock.now_ms() + HOUR_MS, b"m");
    status.blobs = BoundedVec::new(vec![blob.clone()]).unwrap();
    for _ in 0..2 {
        let answer = poster
            .request(Request::PostStatus(Box::new(status.clone())))
            .await;
        assert!(matches!(answer, Ok(Response::StatusPosted { .. })));
    }
    assert_eq!(
        relay.relay.media_refs(blob.id).await.unwrap(),
        1,
        "counted once"
    );

    // The same id from another user is refused and counts nothing.
    let mut thief = RawDevice::registered(&address).await;
    let mut forged = status.clone();
    forged.expires_at_ms += 1;
    let answer = thief.request(Request::PostStatus(Box::new(forged))).await;
    assert_eq!(answer.map_err(|error| error.code), Err(ErrorCode::IdReused));
    assert_eq!(relay.relay.media_refs(blob.id).await.unwrap(), 1);

    assert_eq!(relay.relay.sweep_statuses().await.unwrap(), 0);
    assert_eq!(relay.relay.media_refs(blob.id).await.unwrap(), 1);
    clock.advance(HOUR_MS + 1);
    assert_eq!(relay.relay.sweep_statuses().await.unwrap(), 1);
    assert_eq!(
        relay.relay.media_refs(blob.id).await.unwrap(),
        0,
        "released at expiry"
    );
}
