//! Devices across relays: another relay's users' device lists and key bundles by device,
//! direct envelopes to one device and group envelopes to every device over federation.

use std::time::Duration;

use tidings_protocol::{
    ErrorCode, Kind, MailboxItem,
    client::{ClientFrame, RelayFrame, Request, Response, SendOutcome},
    group::Role,
};

use crate::{
    common::{RawDevice, genesis, group_envelope, member, sent, start_relays, upload_keys},
    support::{another_device, device_id, device_list, key, list, publish, registered, send_to},
};

/// An account of two registered devices homed at the relay at `address`.
async fn two_devices(address: &libp2p::Multiaddr) -> (RawDevice, RawDevice) {
    let mut phone = RawDevice::registered(address).await;
    let mut laptop = another_device(address, &phone).await;
    let both = list(&phone.account, 1, &[&phone.device, &laptop.device]);
    publish(&mut phone, both).await.unwrap();
    registered(&mut laptop).await;
    (phone, laptop)
}

/// Subscribes and takes `count` mailbox items (acking them): their bodies as text, or
/// "bounce: <code>" for bounce notices.
async fn receive(device: &mut RawDevice, count: usize) -> Vec<String> {
    assert!(matches!(
        device.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {got:?} arrived"
        );
        match device.read().await {
            Some(RelayFrame::Deliver { items }) => {
                let mut last = 0;
                for delivery in items.into_vec() {
                    last = delivery.seq;
                    got.push(match delivery.item {
                        MailboxItem::Envelope(raw) => {
                            String::from_utf8_lossy(&raw.open().unwrap().body).into_owned()
                        }
                        MailboxItem::Bounce(bounce) => {
                            format!("bounce: {}", bounce.reason.code.as_str())
                        }
                    });
                }
                device.send_frame(&ClientFrame::Ack { up_to: last }).await;
            }
            Some(_) => continue,
            None => panic!("stream closed"),
        }
    }
    got
}

/// Sends until the relay finds the recipient's home (the DHT may lag a moment).
async fn send_when_found(
    from: &mut RawDevice,
    envelope: impl Fn(&RawDevice) -> tidings_protocol::RawEnvelope,
) {
    for _ in 0..50 {
        match sent(from, envelope(from)).await {
            SendOutcome::Accepted => return,
            SendOutcome::Rejected(answer) if answer.code.is_transient() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("the recipient's home was never found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_lists_bundles_and_envelopes_reach_devices_on_another_relay() {
    let relays = start_relays(2).await;
    let (a, b) = (
        relays[0].relay.tcp_dial_addr().unwrap(),
        relays[1].relay.tcp_dial_addr().unwrap(),
    );
    let (alice_phone, mut alice_laptop) = two_devices(&a).await;
    let (mut bob_phone, mut bob_laptop) = two_devices(&b).await;
    let alice = alice_phone.address().user;

    // Bob's relay fetches Alice's list from hers; it tells Bob nothing of her devices.
    let (held, seen) = device_list(&mut bob_phone, alice).await;
    let held = held.expect("Alice's home relay holds her list");
    assert!(held.contains(&alice_laptop.address().device));
    assert!(seen.is_empty());

    // Bundles by device: the laptop's, not the phone's; an unknown device is refused.
    let uploaded = alice_laptop
        .request(Request::UploadKeys(Box::new(upload_keys(
            &alice_laptop.device,
            2,
        ))))
        .await;
    assert!(uploaded.is_ok(), "{uploaded:?}");
    let claimed = bob_phone
        .request(Request::ClaimBundle {
            device: alice_laptop.address(),
        })
        .await;
    let Ok(Response::Bundle(bundle)) = claimed else {
        panic!("{claimed:?}");
    };
    assert_eq!(bundle.cert.address(), alice_laptop.address());
    let mut nobody = alice_laptop.address();
    nobody.device = device_id(&key());
    let refused = bob_phone
        .request(Request::ClaimBundle { device: nobody })
        .await;
    assert_eq!(refused.unwrap_err().code, ErrorCode::UnknownRecipient);

    // A direct envelope for Alice's laptop reaches it alone; one for a device Alice does not
    // have comes back to every device of Bob's as a bounce.
    let laptop_address = alice_laptop.address();
    send_when_found(&mut bob_phone, |bob| {
        bob.envelope_to(laptop_address, b"for your laptop")
            .sign(&bob.device)
    })
    .await;
    assert_eq!(
        send_to(&mut bob_phone, nobody, "for nobody").await,
        SendOutcome::Accepted
    );
    assert_eq!(
        receive(&mut bob_laptop, 1).await,
        ["bounce: unknown_recipient"]
    );

    // A group message from Alice's phone reaches both of Bob's devices and her laptop.
    let mut alice_phone = alice_phone;
    let created = genesis(
        &alice_phone.account,
        vec![
            member(alice, Role::Admin),
            member(bob_phone.address().user, Role::Member),
        ],
    );
    let group = created.descriptor.group;
    let control = group_envelope(&alice_phone, group, Kind::GroupControl, created.encode());
    assert_eq!(sent(&mut alice_phone, control).await, SendOutcome::Accepted);
    let hello = group_envelope(&alice_phone, group, Kind::Message, b"hello".to_vec());
    assert_eq!(sent(&mut alice_phone, hello).await, SendOutcome::Accepted);

    let laptop_got = receive(&mut alice_laptop, 3).await;
    assert_eq!(laptop_got[0], "for your laptop");
    assert_eq!(laptop_got[2], "hello");
    assert_eq!(receive(&mut bob_laptop, 2).await[1], "hello");
    let bob_phone_got = receive(&mut bob_phone, 3).await;
    assert_eq!(bob_phone_got[0], "bounce: unknown_recipient");
    assert_eq!(bob_phone_got[2], "hello");
}
