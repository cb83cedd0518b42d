//! Groups at the relays: descriptor changes by non-admins are refused by every member relay,
//! and a 1,024-member group is fanned out once per relay.

use std::time::Duration;

use crate::common::{
    self, RawDevice, RawRelayPeer, genesis, group_envelope, member, members, next, sent,
    start_relays,
};
use tidings_protocol::{
    BoundedVec, EnvelopeId, ErrorCode, GroupId, Kind, Recipient, UserId,
    client::{RelayFrame, Request, Response, SendOutcome},
    federation::{FederationRequest, ForwardItem},
    group::{Descriptor, Role, SignedDescriptor},
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

    let v1 = genesis(
        &alice.account,
        vec![
            member(a, Role::Admin),
            member(b, Role::Member),
            member(c, Role::Member),
        ],
    );
    let group = v1.descriptor.group;
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
    let coup = next(
        &v1,
        &bob.account,
        vec![
            member(a, Role::Admin),
            member(b, Role::Admin),
            member(c, Role::Member),
            member(stranger, Role::Member),
        ],
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
                certs: BoundedVec::new(vec![bob.cert()]).unwrap(),
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
    let v1 = genesis(&alice.account, list);
    let group = v1.descriptor.group;
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
            let Ok(frame) = tokio::time::timeout_at(deadline, device.read()).await else {
                panic!("fan-out too slow: a member has no copy after 120 s");
            };
            match frame {
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

/// Mallory, removed at version 2, signs a version 4 of her own (herself admin) and has her
/// own relay forward it, naming an old version she was a member of; she also sends a plain
/// message the same way. Bob's relay decides by the versions it holds: neither reaches him,
/// and the group stays at version 2 there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_take_over_the_group_through_her_own_relay() {
    let relay = common::start_relay(tidings_relay::RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let mallory = common::Stranger::new();
    let mut rogue = RawRelayPeer::connect(&address).await;
    rogue.vouch_for(&mallory).await;
    let (a, b, m) = (
        alice.address().user,
        bob.address().user,
        mallory.address().user,
    );
    let v1 = genesis(
        &alice.account,
        vec![
            member(a, Role::Admin),
            member(b, Role::Member),
            member(m, Role::Member),
        ],
    );
    let group = v1.descriptor.group;
    let v2 = next(
        &v1,
        &alice.account,
        vec![member(a, Role::Admin), member(b, Role::Member)],
    );
    for change in [&v1, &v2] {
        let envelope = group_envelope(&alice, group, Kind::GroupControl, change.encode());
        assert_eq!(sent(&mut alice, envelope).await, SendOutcome::Accepted);
    }

    let takeover = SignedDescriptor::sign(
        &mallory.account,
        Descriptor {
            group,
            version: 4,
            previous: Some([1; 32]),
            name: "mine now".into(),
            members: members(vec![member(m, Role::Admin), member(b, Role::Member)]),
            author: m,
            salt: None,
        },
    );
    let as_mallory = |kind: Kind, body: Vec<u8>| {
        tidings_protocol::Envelope {
            id: EnvelopeId::random(),
            sender: mallory.address(),
            recipient: Recipient::Group(group),
            sent_at_ms: 1,
            kind,
            body,
            blobs: Default::default(),
        }
        .sign(&mallory.device)
    };
    for (kind, body) in [
        (Kind::GroupControl, takeover.encode()),
        (Kind::Message, b"still here".to_vec()),
    ] {
        for claimed in [1, 2, 4] {
            let outcomes = rogue
                .forward(
                    vec![ForwardItem {
                        envelope: as_mallory(kind, body.clone()),
                        recipients: BoundedVec::new(vec![b]).unwrap(),
                        group_version: claimed,
                    }],
                    &[&mallory],
                )
                .await;
            assert!(
                !outcomes[0].is_stored(),
                "{kind:?} claiming version {claimed} was taken: {outcomes:?}"
            );
        }
    }
    assert_eq!(rogue.group_version(group).await, 2);
    let got: Vec<UserId> = bob
        .drain()
        .await
        .iter()
        .map(|raw| raw.decode_unverified().unwrap().sender.user)
        .collect();
    assert_eq!(
        got,
        [a, a],
        "bob got alice's two versions and nothing of mallory's"
    );
}
