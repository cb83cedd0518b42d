//! The home relay keeps each user's newest sealed profile: stored only from the user's own
//! registered device, a higher version replacing, bounded, kept across a restart, and handed
//! to anyone who asks (it is ciphertext), by another relay over federation too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/mod.rs"]
mod common;

use tidings_protocol::{
    BlobId, BlobRef, ErrorAnswer, ErrorCode, UserId,
    client::{ClientFrame, Request, Response},
    profile::{MAX_SEALED_PROFILE_BYTES, SealedProfile},
};

use common::{RawDevice, TestRelay, restart_tweaked, start_relays, start_tweaked};

fn sealed(user: UserId, version: u64, fill: u8) -> SealedProfile {
    SealedProfile {
        user,
        version,
        picture: None,
        ciphertext: vec![fill; 200],
    }
}

async fn put(raw: &mut RawDevice, profile: SealedProfile) -> Result<SealedProfile, ErrorAnswer> {
    match raw
        .request(Request::PutProfile {
            profile: Box::new(profile),
        })
        .await?
    {
        Response::Profile {
            profile: Some(held),
        } => Ok(*held),
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn get(raw: &mut RawDevice, user: UserId) -> Option<SealedProfile> {
    match raw.request(Request::GetProfile { user }).await {
        Ok(Response::Profile { profile }) => profile.map(|profile| *profile),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn a_stored_profile_is_served_and_only_a_newer_one_from_its_user_replaces_it() {
    let TestRelay { dir, relay } = start_tweaked(|_| {}, None).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let alice_user = alice.address().user;

    assert_eq!(get(&mut bob, alice_user).await, None);
    let first = sealed(alice_user, 1, 1);
    assert_eq!(put(&mut alice, first.clone()).await, Ok(first.clone()));
    assert_eq!(get(&mut bob, alice_user).await, Some(first.clone()));

    // A replay and a rollback leave the held one.
    for version in [1, 0] {
        let refused = put(&mut alice, sealed(alice_user, version, 9)).await;
        let answer = refused.unwrap_err();
        assert_eq!(answer.code, ErrorCode::Malformed);
        assert!(answer.detail.starts_with("stale"), "{answer}");
    }
    // Bob cannot store a profile for Alice.
    let forged = put(&mut bob, sealed(alice_user, 7, 6)).await;
    assert_eq!(forged.unwrap_err().code, ErrorCode::SenderMismatch);
    assert_eq!(get(&mut bob, alice_user).await, Some(first));

    let second = SealedProfile {
        picture: Some(BlobRef {
            id: BlobId::of(b"picture"),
            relay: relay.peer_id().to_string(),
            size: 1_000,
        }),
        ..sealed(alice_user, 2, 2)
    };
    assert_eq!(put(&mut alice, second.clone()).await, Ok(second.clone()));
    assert_eq!(get(&mut bob, alice_user).await, Some(second.clone()));

    // Kept across a restart, the version rule too.
    let (account, device) = (alice.account.clone(), alice.device.clone());
    relay.shutdown().await;
    let relay = restart_tweaked(dir.path(), |_| {}).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect_as(&address, account, device).await;
    alice.register().await;
    assert_eq!(get(&mut alice, alice_user).await, Some(second.clone()));
    let replay = put(&mut alice, second).await;
    assert!(replay.unwrap_err().detail.starts_with("stale"));
}

#[tokio::test]
async fn oversized_profiles_and_unregistered_devices_are_refused() {
    let TestRelay { dir: _dir, relay } = start_tweaked(|_| {}, None).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let user = alice.address().user;

    let too_big = SealedProfile {
        ciphertext: vec![0; MAX_SEALED_PROFILE_BYTES + 1],
        ..sealed(user, 1, 0)
    };
    let refused = put(&mut alice, too_big).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Malformed);
    assert_eq!(get(&mut alice, user).await, None);

    // A device that never registered is told to.
    let mut stranger = RawDevice::connect(&address).await;
    let stranger_user = stranger.address().user;
    let answer = put(&mut stranger, sealed(stranger_user, 1, 1)).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::NotRegistered);

    // The stream stays usable after the refusals.
    alice
        .send_frame(&ClientFrame::Request {
            id: 999,
            body: Request::GetProfile { user },
        })
        .await;
    assert!(alice.read().await.is_some());
}

#[tokio::test]
async fn another_relay_fetches_a_profile_from_the_home_relay() {
    let relays = start_relays(2).await;
    let home = relays[0].relay.tcp_dial_addr().unwrap();
    let other = relays[1].relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&home).await;
    let mut bob = RawDevice::registered(&other).await;
    let alice_user = alice.address().user;
    let bob_user = bob.address().user;

    assert_eq!(get(&mut bob, alice_user).await, None);
    let profile = sealed(alice_user, 4, 4);
    put(&mut alice, profile.clone()).await.unwrap();
    assert_eq!(get(&mut bob, alice_user).await, Some(profile));
    // And the other way round.
    let elsewhere = put(&mut bob, sealed(bob_user, 1, 1)).await;
    assert!(elsewhere.is_ok());
    assert_eq!(
        get(&mut alice, bob_user).await,
        Some(sealed(bob_user, 1, 1))
    );
}
