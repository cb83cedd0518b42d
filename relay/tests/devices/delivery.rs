//! Per-device mailboxes: a direct envelope reaches the device it names (one of the sender's
//! own included), a group envelope every device of each member but the sending one, and
//! each device acks its own mailbox.

use tidings_protocol::{
    ErrorCode, Kind,
    client::{ClientFrame, SendOutcome},
    group::Role,
};

use crate::{
    common::{RawDevice, genesis, group_envelope, member, sent, start_tweaked},
    support::{
        another_device, device_id, key, list, peek, publish, reconnect, registered, send_to,
        settled, texts,
    },
};

/// An account of two registered devices on the relay at `address`.
async fn two_devices(address: &libp2p::Multiaddr) -> (RawDevice, RawDevice) {
    let mut phone = RawDevice::registered(address).await;
    let mut laptop = another_device(address, &phone).await;
    let both = list(&phone.account, 1, &[&phone.device, &laptop.device]);
    publish(&mut phone, both).await.unwrap();
    registered(&mut laptop).await;
    (phone, laptop)
}

#[tokio::test]
async fn a_direct_envelope_reaches_only_the_device_it_names() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let (mut phone, mut laptop) = two_devices(&address).await;
    let mut bob = RawDevice::registered(&address).await;

    assert_eq!(
        send_to(&mut bob, phone.address(), "to the phone").await,
        SendOutcome::Accepted
    );
    assert_eq!(
        send_to(&mut bob, laptop.address(), "to the laptop").await,
        SendOutcome::Accepted
    );
    // Own-device sync: the phone's copy of what it sent, for the laptop.
    assert_eq!(
        send_to(&mut phone, laptop.address(), "sent from the phone").await,
        SendOutcome::Accepted
    );
    // A device the account never registered here.
    let mut stranger_device = phone.address();
    stranger_device.device = device_id(&key());
    let refused = send_to(&mut bob, stranger_device, "nobody").await;
    assert!(
        matches!(&refused, SendOutcome::Rejected(answer) if answer.code == ErrorCode::UnknownRecipient),
        "{refused:?}"
    );

    assert_eq!(texts(&phone.drain().await), ["to the phone"]);
    assert_eq!(
        texts(&laptop.drain().await),
        ["to the laptop", "sent from the phone"]
    );
}

#[tokio::test]
async fn a_group_envelope_reaches_every_device_of_every_member_but_the_sending_one() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let (mut alice_phone, mut alice_laptop) = two_devices(&address).await;
    let (mut bob_phone, mut bob_laptop) = two_devices(&address).await;
    let created = genesis(
        &alice_phone.account,
        vec![
            member(alice_phone.address().user, Role::Admin),
            member(bob_phone.address().user, Role::Member),
        ],
    );
    let group = created.descriptor.group;
    let control = group_envelope(&alice_phone, group, Kind::GroupControl, created.encode());
    assert_eq!(sent(&mut alice_phone, control).await, SendOutcome::Accepted);
    let hello = group_envelope(&alice_phone, group, Kind::Message, b"hello all".to_vec());
    assert_eq!(sent(&mut alice_phone, hello).await, SendOutcome::Accepted);
    let reply = group_envelope(&bob_laptop, group, Kind::Message, b"hi alice".to_vec());
    assert_eq!(sent(&mut bob_laptop, reply).await, SendOutcome::Accepted);

    let last = |got: Vec<tidings_protocol::RawEnvelope>| texts(&got).split_off(1);
    assert_eq!(last(bob_phone.drain().await), ["hello all", "hi alice"]);
    assert_eq!(last(alice_laptop.drain().await), ["hello all", "hi alice"]);
    assert_eq!(texts(&bob_laptop.drain().await)[1..], ["hello all"]);
    assert_eq!(texts(&alice_phone.drain().await), ["hi alice"]);
}

#[tokio::test]
async fn each_device_acks_its_own_mailbox() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let (phone, laptop) = two_devices(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let created = genesis(
        &bob.account,
        vec![
            member(bob.address().user, Role::Admin),
            member(phone.address().user, Role::Member),
        ],
    );
    let group = created.descriptor.group;
    let control = group_envelope(&bob, group, Kind::GroupControl, created.encode());
    assert_eq!(sent(&mut bob, control).await, SendOutcome::Accepted);

    // The phone takes and acks it; the laptop, offline meanwhile, still gets it.
    let mut phone = reconnect(&address, &phone).await;
    assert_eq!(phone.drain().await.len(), 1);
    settled(&mut phone).await;
    let mut phone_again = reconnect(&address, &phone).await;
    assert!(peek(&mut phone_again).await.is_empty());
    let mut laptop = reconnect(&address, &laptop).await;
    let pending = peek(&mut laptop).await;
    assert_eq!(pending.len(), 1);
    // The laptop acks on its own (an ack beyond what was pushed stops there).
    laptop.send_frame(&ClientFrame::Ack { up_to: 99 }).await;
    settled(&mut laptop).await;
    let mut laptop_again = reconnect(&address, &laptop).await;
    assert!(peek(&mut laptop_again).await.is_empty());
}
