//! Link slots: a device of an account leaves a sealed package for a device its list names, which takes it once before registering; the attacks on them fail.

use ed25519_dalek::SigningKey;
use tidings_protocol::{
    DeviceEntry, DeviceId, DeviceList, ErrorAnswer, ErrorCode,
    client::{Request, Response},
    limits::MAX_LINK_PACKAGE_BYTES,
};

use crate::common::{RawDevice, start_tweaked};

fn key() -> SigningKey {
    SigningKey::from_bytes(&rand::random())
}

fn id(key: &SigningKey) -> DeviceId {
    DeviceId::from(&key.verifying_key())
}

/// Publishes a list of `raw`'s account naming `raw`'s device and `others`, at `version`.
async fn publish_list(raw: &mut RawDevice, version: u64, others: &[&SigningKey]) {
    let mut devices = vec![DeviceEntry {
        device: id(&raw.device),
        name: "phone".into(),
        added_at_ms: 1,
    }];
    devices.extend(others.iter().map(|other| DeviceEntry {
        device: id(other),
        name: "laptop".into(),
        added_at_ms: 2,
    }));
    let list = DeviceList::new(raw.address().user, version, devices)
        .unwrap()
        .sign(&raw.account);
    let answer = raw
        .request(Request::PublishDeviceList {
            list: Box::new(list),
        })
        .await;
    assert!(
        matches!(answer, Ok(Response::DeviceList { .. })),
        "{answer:?}"
    );
}

async fn put(raw: &mut RawDevice, device: &SigningKey, package: &[u8]) -> Result<(), ErrorAnswer> {
    match raw
        .request(Request::PutLink {
            device: id(device),
            package: package.to_vec(),
        })
        .await?
    {
        Response::LinkStored => Ok(()),
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn take(raw: &mut RawDevice) -> Option<Vec<u8>> {
    match raw.request(Request::TakeLink).await {
        Ok(Response::Link { package }) => package,
        other => panic!("unexpected answer {other:?}"),
    }
}

fn code_of(answer: Result<(), ErrorAnswer>) -> ErrorCode {
    answer.unwrap_err().code
}

#[tokio::test]
async fn the_new_device_takes_its_package_once_before_it_registers() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let laptop = key();
    publish_list(&mut alice, 1, &[&laptop]).await;
    put(&mut alice, &laptop, b"sealed package").await.unwrap();

    // Connected with its own device key, not registered.
    let mut new = RawDevice::connect_as(&address, key(), laptop.clone()).await;
    assert_eq!(take(&mut new).await, Some(b"sealed package".to_vec()));
    assert_eq!(take(&mut new).await, None, "handed out once");
    // It may read its account's list (public key material) before registering.
    let user = alice.address().user;
    match new.request(Request::GetDeviceList { user }).await {
        Ok(Response::DeviceList {
            list: Some(list),
            seen,
        }) => {
            assert!(list.contains(&id(&laptop)));
            assert!(
                seen.is_empty(),
                "no presence for a stream that is not registered"
            );
        }
        other => panic!("unexpected answer {other:?}"),
    }
    // Other requests still need registration.
    let answer = new.request(Request::Subscribe).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::NotRegistered);
}

#[tokio::test]
async fn another_account_cannot_leave_a_package_or_take_one() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut mallory = RawDevice::registered(&address).await;
    let laptop = key();
    publish_list(&mut alice, 1, &[&laptop]).await;

    // Mallory's account does not name the laptop: refused.
    assert_eq!(
        code_of(put(&mut mallory, &laptop, b"evil").await),
        ErrorCode::UnknownRecipient
    );
    put(&mut alice, &laptop, b"good").await.unwrap();
    // Naming it in Mallory's own list does not let Mallory replace Alice's package.
    publish_list(&mut mallory, 1, &[&laptop]).await;
    assert_eq!(
        code_of(put(&mut mallory, &laptop, b"evil").await),
        ErrorCode::Unavailable
    );

    // Neither Mallory's registered device nor a stranger's stream gets the package.
    assert_eq!(take(&mut mallory).await, None);
    let mut stranger = RawDevice::connect(&address).await;
    assert_eq!(take(&mut stranger).await, None);

    let mut new = RawDevice::connect_as(&address, key(), laptop).await;
    assert_eq!(take(&mut new).await, Some(b"good".to_vec()));
}

#[tokio::test]
async fn slots_are_capped_per_account_and_packages_bounded() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let devices = [key(), key(), key()];
    publish_list(&mut alice, 1, &devices.iter().collect::<Vec<_>>()).await;
    put(&mut alice, &devices[0], b"one").await.unwrap();
    put(&mut alice, &devices[1], b"two").await.unwrap();
    // Replacing one's own package is not a new slot.
    put(&mut alice, &devices[1], b"two again").await.unwrap();
    assert_eq!(
        code_of(put(&mut alice, &devices[2], b"three").await),
        ErrorCode::QuotaExceeded
    );
    // Once one is taken, there is room again.
    let mut first = RawDevice::connect_as(&address, key(), devices[0].clone()).await;
    assert_eq!(take(&mut first).await, Some(b"one".to_vec()));
    put(&mut alice, &devices[2], b"three").await.unwrap();

    let oversized = vec![0u8; MAX_LINK_PACKAGE_BYTES + 1];
    assert_eq!(
        code_of(put(&mut alice, &devices[2], &oversized).await),
        ErrorCode::Malformed
    );

    // An unregistered stream cannot leave packages.
    let mut stranger = RawDevice::connect(&address).await;
    assert_eq!(
        code_of(put(&mut stranger, &devices[2], b"x").await),
        ErrorCode::NotRegistered
    );
}
