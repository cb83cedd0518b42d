//! Groups at the relays: descriptor changes by non-admins are refused by every member relay,
//! and a 1,024-member group is fanned out once per relay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{RawDevice, RawRelayPeer, descriptor, group_envelope, member, sent, start_relays};
use tidings_protocol::{
    BoundedVec, ErrorCode, GroupId, Kind, UserId,
    client::{RelayFrame, Request, Response, SendOutcome},
    federation::{FederationRequest, ForwardItem},
    group::{Role, SignedDescriptor},
    limits::MAX_GROUP_MEMBERS,
};
use tidings_relay::metrics::BatchKind;

async fn wait_for_version(peer: &mut RawRelayPeer, group: GroupId, version: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while peer.group_version(group).await < version {
        assert!(
            tokio::time::Instant::now() < deadline,
            "group did not reach the relay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_change_is_refused_by_every_member_relay() {
    let relays = start_relays(3).await;
    let addrs: Vec<_> = relays
        .iter()
        .map(|r| r.relay.tcp_dial_addr().unwrap())
        .collect();
    let mut alice = RawDevice::connect(&addrs[0]).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&addrs[1]).await;
    bob.register().await;
    let mut carol = RawDevice::connect(&addrs[2]).await;
    carol.register().await;
    let (a, b, c) = (
        alice.address().user,
        bob.address().user,
        carol.address().user,
    );

    let group = GroupId::random();
    let v1 = SignedDescriptor::sign(
        &alice.account,
        descriptor(
            group,
            1,
            None,
            a,
            vec![
                member(a, Role::Admin),
                member(b, Role::Member),
                member(c, Role::Member),
            ],
        ),
    );
    let genesis = group_envelope(&alice, group, Kind::GroupControl, v1.encode());
    assert_eq!(sent(&mut alice, genesis).await, SendOutcome::Accepted);
    let mut peers = Vec::new();
    for address in &addrs {
        let mut peer = RawRelayPeer::connect(address).await;
        wait_for_version(&mut peer, group, 1).await;
        peers.push(peer);
    }

    // Bob, a member but not an admin, makes himself admin and adds a stranger.
    let stranger = UserId::from(&ed25519_dalek::SigningKey::from_bytes(&[77; 32]).verifying_key());
    let coup = SignedDescriptor::sign(
        &bob.account,
        descriptor(
            group,
            2,
            Some(v1.hash()),
            b,
            vec![
                member(a, Role::Admin),
                member(b, Role::Admin),
                member(c, Role::Member),
                member(stranger, Role::Member),
            ],
        ),
    );
    let through_his_relay = group_envelope(&bob, group, Kind::GroupControl, coup.encode());
    match sent(&mut bob, through_his_relay.clone()).await {
        SendOutcome::Rejected(answer) => assert_eq!(answer.code, ErrorCode::BadDescriptor),
        other => panic!("bob's relay took it: {other:?}"),
    }
    // Pushed straight at every relay over federation, as descriptors and as a forward.
    for peer in &mut peers {
        let answer = peer
            .request(FederationRequest::Descriptors {
                versions: BoundedVec::new(vec![coup.clone()]).unwrap(),
            })
            .await;
        assert_eq!(answer.unwrap_err().code, ErrorCode::BadDescriptor);
        let forwarded = peer
            .request(FederationRequest::Forward {
                items: BoundedVec::new(vec![ForwardItem {
                    envelope: through_his_relay.clone(),
                    recipients: BoundedVec::new(vec![a, c]).unwrap(),
                    group_version: 2,
                }])
                .unwrap(),
            })
            .await;
        assert!(forwarded.is_ok());
        assert_eq!(
            peer.group_version(group).await,
            1,
            "every relay still holds version 1"
        );
    }
    // A forged admin signature fares no better.
    let mut forged = SignedDescriptor::sign(&alice.account, coup.descriptor.clone());
    forged.descriptor.author = a;
    forged.signature[0] ^= 1;
    for peer in &mut peers {
        let answer = peer
            .request(FederationRequest::Descriptors {
                versions: BoundedVec::new(vec![forged.clone()]).unwrap(),
            })
            .await;
        assert_eq!(answer.unwrap_err().code, ErrorCode::BadDescriptor);
    }
    // Carol's mailbox holds the genesis only: nothing of Bob's coup reached her.
    assert!(matches!(
        carol.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));
    let mut kinds = Vec::new();
    loop {
        match carol.read().await {
            Some(RelayFrame::Deliver { items }) => {
                for item in items.iter() {
                    if let tidings_protocol::MailboxItem::Envelope(raw) = &item.item {
                        kinds.push(raw.decode_unverified().unwrap().sender.user);
                    }
                }
            }
            Some(RelayFrame::CaughtUp { .. }) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, vec![a], "carol got exactly alice's genesis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_1024_members_over_three_relays_is_fanned_out_once_per_relay() {
    let relays = start_relays(3).await;
    let addrs: Vec<_> = relays
        .iter()
        .map(|r| r.relay.tcp_dial_addr().unwrap())
        .collect();
    let mut alice = RawDevice::connect(&addrs[0]).await;
    alice.register().await;
    let mut members = Vec::with_capacity(MAX_GROUP_MEMBERS - 1);
    for index in 0..MAX_GROUP_MEMBERS - 1 {
        let mut device = RawDevice::connect(&addrs[index % 3]).await;
        device.register().await;
        members.push(device);
    }
    let a = alice.address().user;
    let mut list = vec![member(a, Role::Admin)];
    list.extend(
        members
            .iter()
            .map(|m| member(m.address().user, Role::Member)),
    );
    let group = GroupId::random();
    let v1 = SignedDescriptor::sign(&alice.account, descriptor(group, 1, None, a, list));
    let genesis = group_envelope(&alice, group, Kind::GroupControl, v1.encode());
    assert_eq!(sent(&mut alice, genesis).await, SendOutcome::Accepted);
    for address in &addrs[1..] {
        wait_for_version(&mut RawRelayPeer::connect(address).await, group, 1).await;
    }
    // Let the creation's fan-out finish (its lookups are cold) before counting.
    let metrics = relays[0].relay.metrics();
    let mut before = metrics.forward_batches(BatchKind::Group);
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = metrics.forward_batches(BatchKind::Group);
        if now == before {
            break;
        }
        before = now;
    }
    let message = group_envelope(
        &alice,
        group,
        Kind::Message,
        b"one ciphertext for all".to_vec(),
    );
    let id = message.decode_unverified().unwrap().id;
    assert_eq!(sent(&mut alice, message).await, SendOutcome::Accepted);

    // Every member gets the message exactly once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for device in &mut members {
        assert!(matches!(
            device.request(Request::Subscribe).await,
            Ok(Response::Subscribed { .. })
        ));
        let mut copies = 0;
        loop {
            assert!(tokio::time::Instant::now() < deadline, "fan-out too slow");
            match device.read().await {
                Some(RelayFrame::Deliver { items }) => {
                    copies += items
                        .iter()
                        .filter(|item| matches!(&item.item, tidings_protocol::MailboxItem::Envelope(raw) if raw.decode_unverified().map(|e| e.id) == Ok(id)))
                        .count();
                    if copies == 1 {
                        break;
                    }
                }
                Some(RelayFrame::CaughtUp { .. }) => {
                    if copies == 1 {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(copies, 1);
    }
    assert_eq!(
        metrics.forward_batches(BatchKind::Group) - before,
        2,
        "one batch per other relay"
    );
}
