//! The home relay keeps and serves signed device lists: what it stores, what it refuses, and
//! that a stored list outlives a restart.

use ed25519_dalek::SigningKey;
use tidings_protocol::{
    DeviceEntry, DeviceId, DeviceList, ErrorCode, SignedDeviceList, UserId,
    client::{Request, Response},
};
use tidings_relay::metrics::DeviceListVerdict;

use crate::common::{RawDevice, TestRelay, restart_tweaked, start_tweaked};

fn entry(device: &SigningKey, name: &str) -> DeviceEntry {
    DeviceEntry {
        device: DeviceId::from(&device.verifying_key()),
        name: name.into(),
        added_at_ms: 1,
    }
}

/// A list of `raw`'s account naming `raw`'s device and `others`, at `version`, signed by
/// `signer` (the account key unless a test forges it).
fn list(
    raw: &RawDevice,
    version: u64,
    others: &[SigningKey],
    signer: &SigningKey,
) -> SignedDeviceList {
    let mut devices = vec![entry(&raw.device, "this one")];
    devices.extend(others.iter().map(|key| entry(key, "another")));
    DeviceList::new(raw.address().user, version, devices)
        .unwrap()
        .sign(signer)
}

fn own(raw: &RawDevice, version: u64) -> SignedDeviceList {
    list(raw, version, &[], &raw.account)
}

async fn publish(
    raw: &mut RawDevice,
    list: SignedDeviceList,
) -> Result<Option<SignedDeviceList>, tidings_protocol::ErrorAnswer> {
    match raw
        .request(Request::PublishDeviceList {
            list: Box::new(list),
        })
        .await?
    {
        Response::DeviceList { list, .. } => Ok(list.map(|list| *list)),
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn get(raw: &mut RawDevice, user: UserId) -> Option<SignedDeviceList> {
    match raw.request(Request::GetDeviceList { user }).await {
        Ok(Response::DeviceList { list, .. }) => list.map(|list| *list),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn verdicts(relay: &TestRelay, verdict: DeviceListVerdict) -> u64 {
    relay.relay.metrics().device_lists.verdicts(verdict)
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&rand::random())
}

#[tokio::test]
async fn a_published_list_is_served_and_a_newer_one_replaces_it() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let alice_user = alice.address().user;

    assert_eq!(get(&mut bob, alice_user).await, None);
    let first = own(&alice, 1);
    assert_eq!(
        publish(&mut alice, first.clone()).await,
        Ok(Some(first.clone()))
    );
    assert_eq!(get(&mut bob, alice_user).await, Some(first));

    let second = list(&alice, 2, &[key()], &alice.account);
    assert_eq!(
        publish(&mut alice, second.clone()).await,
        Ok(Some(second.clone()))
    );
    assert_eq!(get(&mut bob, alice_user).await, Some(second));
    assert_eq!(verdicts(&relay, DeviceListVerdict::Stored), 2);
    let text = relay.relay.metrics().render();
    assert!(
        text.contains("tidings_device_lists_total{verdict=\"stored\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn stale_forged_foreign_and_selfless_lists_are_refused() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let alice_user = alice.address().user;
    let held = own(&alice, 5);
    publish(&mut alice, held.clone()).await.unwrap();

    // The same version again, and a lower one: a replay and a rollback.
    for version in [5, 4] {
        let again = list(&alice, version, &[key()], &alice.account);
        let refused = publish(&mut alice, again).await;
        assert_eq!(refused.unwrap_err().code, ErrorCode::StaleDeviceList);
    }
    assert_eq!(verdicts(&relay, DeviceListVerdict::Stale), 2);

    // Signed by another key than the account's.
    let forged = list(&alice, 6, &[], &key());
    assert_eq!(
        publish(&mut alice, forged).await.unwrap_err().code,
        ErrorCode::BadSignature
    );
    assert_eq!(verdicts(&relay, DeviceListVerdict::Forged), 1);

    // Bob publishes Alice's list (a real one): not his to publish.
    let foreign = own(&alice, 7);
    assert_eq!(
        publish(&mut bob, foreign).await.unwrap_err().code,
        ErrorCode::SenderMismatch
    );
    assert_eq!(verdicts(&relay, DeviceListVerdict::WrongUser), 1);

    // A list of Alice's account that leaves out the device publishing it.
    let selfless = DeviceList::new(alice_user, 8, vec![entry(&key(), "elsewhere")])
        .unwrap()
        .sign(&alice.account);
    assert_eq!(
        publish(&mut alice, selfless).await.unwrap_err().code,
        ErrorCode::Malformed
    );
    assert_eq!(verdicts(&relay, DeviceListVerdict::MissingSelf), 1);

    assert_eq!(get(&mut bob, alice_user).await, Some(held));
    assert_eq!(verdicts(&relay, DeviceListVerdict::Stored), 1);
}

#[tokio::test]
async fn a_list_over_the_configured_cap_is_refused() {
    let relay = start_tweaked(|config| config.limits.max_devices_per_account = 2, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let fits = list(&alice, 1, &[key()], &alice.account);
    publish(&mut alice, fits.clone()).await.unwrap();
    let over = list(&alice, 2, &[key(), key()], &alice.account);
    assert_eq!(
        publish(&mut alice, over).await.unwrap_err().code,
        ErrorCode::QuotaExceeded
    );
    assert_eq!(verdicts(&relay, DeviceListVerdict::OverLimit), 1);
    let user = alice.address().user;
    assert_eq!(get(&mut alice, user).await, Some(fits));
}

#[tokio::test]
async fn a_stored_list_survives_a_restart() {
    let first = start_tweaked(|_| {}, None).await;
    let address = first.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let stored = list(&alice, 3, &[key()], &alice.account);
    publish(&mut alice, stored.clone()).await.unwrap();
    let (account, device) = (alice.account.clone(), alice.device.clone());
    drop(alice);
    let TestRelay { dir, relay } = first;
    relay.shutdown().await;

    let relay = restart_tweaked(dir.path(), |_| {}).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect_as(&address, account, device).await;
    let user = alice.address().user;
    assert_eq!(get(&mut alice, user).await, Some(stored.clone()));
    // The version rule holds across the restart.
    let replay = publish(&mut alice, stored).await;
    assert_eq!(replay.unwrap_err().code, ErrorCode::StaleDeviceList);
}
