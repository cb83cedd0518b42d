//! Helpers for accounts of several devices: device lists, registering with one, waiting for
//! frames.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use tidings_protocol::{
    Address, DeviceEntry, DeviceId, DeviceList, ErrorAnswer, MailboxItem, RawEnvelope,
    SignedDeviceList, UserId,
    client::{Register, RelayFrame, Request, Response},
};

use crate::common::RawDevice;

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&rand::random())
}

pub fn device_id(device: &SigningKey) -> DeviceId {
    DeviceId::from(&device.verifying_key())
}

pub fn user_of(account: &SigningKey) -> UserId {
    UserId::from(&account.verifying_key())
}

/// A list of `account` naming `devices`, at `version`, signed by `signer`.
pub fn signed_list(
    account: &SigningKey,
    version: u64,
    devices: &[&SigningKey],
    signer: &SigningKey,
) -> SignedDeviceList {
    let entries = devices
        .iter()
        .enumerate()
        .map(|(index, device)| DeviceEntry {
            device: device_id(device),
            name: format!("device {index}"),
            added_at_ms: 1,
        })
        .collect();
    DeviceList::new(user_of(account), version, entries)
        .unwrap()
        .sign(signer)
}

/// A list of `account` naming `devices`, at `version`, signed by the account.
pub fn list(account: &SigningKey, version: u64, devices: &[&SigningKey]) -> SignedDeviceList {
    signed_list(account, version, devices, account)
}

/// Another device of `of`'s account, connected (not registered).
pub async fn another_device(address: &Multiaddr, of: &RawDevice) -> RawDevice {
    RawDevice::connect_as(address, of.account.clone(), key()).await
}

/// The same device on a new stream.
pub async fn reconnect(address: &Multiaddr, device: &RawDevice) -> RawDevice {
    RawDevice::connect_as(address, device.account.clone(), device.device.clone()).await
}

/// Registers `raw` (with a device list, or under the held one).
pub async fn register_with(
    raw: &mut RawDevice,
    list: Option<SignedDeviceList>,
) -> Result<Response, ErrorAnswer> {
    let cert = raw.cert();
    raw.request(Request::Register(Box::new(Register {
        cert,
        invite: None,
        list: list.map(Box::new),
    })))
    .await
}

/// Registers `raw` under the held list; panics unless it is registered.
pub async fn registered(raw: &mut RawDevice) {
    let answer = register_with(raw, None).await;
    assert!(
        matches!(answer, Ok(Response::Registered { .. })),
        "{answer:?}"
    );
}

/// Publishes a device list from `raw`.
pub async fn publish(raw: &mut RawDevice, list: SignedDeviceList) -> Result<Response, ErrorAnswer> {
    raw.request(Request::PublishDeviceList {
        list: Box::new(list),
    })
    .await
}

/// The device list of `user` and what the relay says of its devices.
pub async fn device_list(
    raw: &mut RawDevice,
    user: UserId,
) -> (
    Option<SignedDeviceList>,
    Vec<tidings_protocol::client::DeviceSeen>,
) {
    match raw.request(Request::GetDeviceList { user }).await {
        Ok(Response::DeviceList { list, seen }) => (list.map(|list| *list), seen.into_vec()),
        other => panic!("unexpected {other:?}"),
    }
}

/// Sends `text` from `from` to the device `to`; the outcome.
pub async fn send_to(
    from: &mut RawDevice,
    to: Address,
    text: &str,
) -> tidings_protocol::client::SendOutcome {
    let envelope = from.envelope_to(to, text.as_bytes()).sign(&from.device);
    crate::common::sent(from, envelope).await
}

/// The bodies of envelopes, as text.
pub fn texts(envelopes: &[RawEnvelope]) -> Vec<String> {
    envelopes
        .iter()
        .map(|raw| String::from_utf8_lossy(&raw.open().unwrap().body).into_owned())
        .collect()
}

/// Subscribes and reads until caught up without acking: the envelopes.
pub async fn peek(raw: &mut RawDevice) -> Vec<RawEnvelope> {
    assert!(matches!(
        raw.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));
    let mut got = Vec::new();
    loop {
        match raw.read().await {
            Some(RelayFrame::Deliver { items }) => {
                for delivery in items.into_vec() {
                    if let MailboxItem::Envelope(envelope) = delivery.item {
                        got.push(envelope);
                    }
                }
            }
            Some(RelayFrame::CaughtUp { .. }) => return got,
            Some(_) => continue,
            None => panic!("stream closed while reading the mailbox"),
        }
    }
}

/// Reads frames until `pick` returns something (within the read timeout of each frame).
pub async fn wait_for<T>(raw: &mut RawDevice, mut pick: impl FnMut(RelayFrame) -> Option<T>) -> T {
    loop {
        match raw.read().await {
            Some(frame) => {
                if let Some(found) = pick(frame) {
                    return found;
                }
            }
            None => panic!("stream closed while waiting"),
        }
    }
}

/// Reads until the relay closes the stream; the last `Fatal` it sent, if any.
pub async fn closed_with(raw: &mut RawDevice) -> Option<ErrorAnswer> {
    let mut fatal = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match raw.read().await {
            Some(RelayFrame::Fatal(answer)) => fatal = Some(answer),
            Some(_) => continue,
            None => return fatal,
        }
    }
    panic!("the stream stayed open");
}

/// Waits until what `raw` sent before (acks included) is committed: a store request after
/// them is answered in order, after their writes.
pub async fn settled(raw: &mut RawDevice) {
    let user = raw.address().user;
    assert!(
        raw.request(Request::GetDeviceList { user }).await.is_ok(),
        "the relay did not answer"
    );
}
