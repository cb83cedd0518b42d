//! Moving home with several devices: the old home hands each device's mailbox on, and the
//! new home stores each direct envelope for the device it names.

use tidings_protocol::{
    HomeRecord,
    client::{Request, Response, SendOutcome},
    home::HOME_RECORD_LIFETIME_MS,
    now_ms,
};

use crate::{
    common::{RawDevice, start_relays},
    federation::two_devices,
    support::{list, receive, reconnect, register_with, registered, send_to},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_home_hands_each_devices_mailbox_to_the_new_relay() {
    let relays = start_relays(2).await;
    let (a, b) = (
        relays[0].relay.tcp_dial_addr().unwrap(),
        relays[1].relay.tcp_dial_addr().unwrap(),
    );
    let (mut phone, laptop) = two_devices(&a).await;
    let mut bob = RawDevice::registered(&a).await;
    for (to, text) in [
        (phone.address(), "for the phone"),
        (laptop.address(), "for the laptop"),
    ] {
        assert_eq!(send_to(&mut bob, to, text).await, SendOutcome::Accepted);
    }

    // Both devices register at the new home under the account's list; the phone names it
    // home there and at the old home, which starts the handoff.
    let account = phone.account.clone();
    let mut phone_b = reconnect(&b, &phone).await;
    let moved = list(&account, 2, &[&phone.device, &laptop.device]);
    let answer = register_with(&mut phone_b, Some(moved)).await;
    assert!(
        matches!(answer, Ok(Response::Registered { .. })),
        "{answer:?}"
    );
    let home = HomeRecord::sign(
        &account,
        relays[1].relay.peer_id().to_string(),
        tidings_protocol::BoundedVec::new(Vec::new()).unwrap(),
        now_ms(),
        now_ms() + HOME_RECORD_LIFETIME_MS,
    );
    let published = phone_b
        .request(Request::PublishHome(Box::new(home.clone())))
        .await;
    assert_eq!(published, Ok(Response::HomePublished));
    let mut laptop_b = reconnect(&b, &laptop).await;
    registered(&mut laptop_b).await;
    let left = phone.request(Request::PublishHome(Box::new(home))).await;
    assert_eq!(left, Ok(Response::HomePublished));

    assert_eq!(receive(&mut phone_b, 1).await, ["for the phone"]);
    assert_eq!(receive(&mut laptop_b, 1).await, ["for the laptop"]);
}
