//! Filling a relay's storage, as one account or as nobody: group fan-outs to made-up members,
//! and what a refused fan-out leaves behind; a disk that fails under the relay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    RawDevice, RawRelayPeer, Stranger, TestRelay, group_envelope, member, restart_tweaked, sent,
    start_tweaked,
};
use tidings_protocol::{
    BoundedVec, ErrorCode, GroupId, Kind, UserId,
    client::{Response, SendOutcome},
    federation::{FederationRequest, ForwardItem},
    group::Role,
};
use tidings_relay::{metrics::Refusal, store::fault::FaultSwitch};

fn code(outcome: &SendOutcome) -> Option<ErrorCode> {
    match outcome {
        SendOutcome::Rejected(answer) => Some(answer.code),
        _ => None,
    }
}

/// Users nobody can find: their ids sort after any real member's (so a fan-out in id order
/// reaches the real members first).
fn made_up(count: usize) -> Vec<UserId> {
    (0..count)
        .map(|index| {
            let mut bytes = [0xff; 32];
            bytes[1..9].copy_from_slice(&(index as u64).to_be_bytes());
            UserId::from_bytes(bytes)
        })
        .collect()
}

/// The genesis of a group `admin` creates with `members` (besides the admin).
fn genesis(admin: &RawDevice, members: &[UserId]) -> (GroupId, tidings_protocol::RawEnvelope) {
    let a = admin.address().user;
    let mut list = vec![member(a, Role::Admin)];
    list.extend(members.iter().map(|user| member(*user, Role::Member)));
    let v1 = common::genesis(&admin.account, list);
    let group = v1.descriptor.group;
    let raw = group_envelope(admin, group, Kind::GroupControl, v1.encode());
    (group, raw)
}

#[tokio::test]
async fn a_fan_out_refused_part_way_leaves_nothing_behind() {
    let relay = start_tweaked(|config| config.limits.outbox_max_envelopes = 4, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;

    // Bob lives here; ten made-up members would need ten outbox entries, four fit.
    let mut members = vec![bob.address().user];
    members.extend(made_up(10));
    let (group, raw) = genesis(&alice, &members);
    let outcome = sent(&mut alice, raw).await;
    assert_eq!(code(&outcome), Some(ErrorCode::RateLimited), "{outcome:?}");

    // Nothing of it was kept: no outbox entry, no mailbox entry, no descriptor.
    assert_eq!(relay.relay.metrics().outbox_entries(), 0);
    assert!(
        bob.drain().await.is_empty(),
        "bob got part of a refused fan-out"
    );
    let mut peer = RawRelayPeer::connect(&address).await;
    assert_eq!(peer.group_version(group).await, 0);

    // A group that fits goes through whole.
    let mut members = vec![bob.address().user];
    members.extend(made_up(4));
    let (_, raw) = genesis(&alice, &members);
    assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
    assert_eq!(relay.relay.metrics().outbox_entries(), 4);
}

#[tokio::test]
async fn made_up_members_fill_their_senders_share_of_the_outbox_not_everyones() {
    let relay = start_tweaked(
        |config| {
            config.limits.outbox_max_envelopes = 1_000;
            config.limits.outbox_max_per_user = 100;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut mallory = RawDevice::registered(&address).await;
    let mut alice = RawDevice::registered(&address).await;

    // Mallory's group of 1,023 made-up members: more than her share, refused whole.
    let (_, raw) = genesis(&mallory, &made_up(1023));
    let outcome = sent(&mut mallory, raw).await;
    assert_eq!(code(&outcome), Some(ErrorCode::RateLimited), "{outcome:?}");
    // Smaller ones fill her share, and then she is refused.
    let (_, raw) = genesis(&mallory, &made_up(60));
    assert_eq!(sent(&mut mallory, raw).await, SendOutcome::Accepted);
    let (_, raw) = genesis(&mallory, &made_up(60));
    let outcome = sent(&mut mallory, raw).await;
    assert_eq!(code(&outcome), Some(ErrorCode::RateLimited), "{outcome:?}");
    assert_eq!(relay.relay.metrics().outbox_entries(), 60);

    // Alice still reaches users elsewhere.
    let elsewhere = Stranger::new().address();
    let raw = alice.envelope_to(elsewhere, b"hi").sign(&alice.device);
    assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
}

#[tokio::test]
async fn a_group_message_costs_one_rate_token_per_entry_it_creates() {
    // The default rate (100 a second, 1,000 at once); a share big enough not to matter.
    let relay = start_tweaked(|config| config.limits.outbox_max_per_user = 1_000_000, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut mallory = RawDevice::registered(&address).await;
    let (group, raw) = genesis(&mallory, &made_up(300));
    assert_eq!(sent(&mut mallory, raw).await, SendOutcome::Accepted);

    // Ten messages of 300 entries each in one request: 3,000 entries, three times the burst.
    let batch = (0..10)
        .map(|_| group_envelope(&mallory, group, Kind::Message, b"spam".to_vec()))
        .collect();
    let Ok(Response::Sent { outcomes }) = mallory.send(batch).await else {
        panic!("send failed");
    };
    let outcomes = outcomes.into_vec();
    let accepted = outcomes
        .iter()
        .filter(|outcome| **outcome == SendOutcome::Accepted)
        .count();
    assert!(accepted >= 1, "{outcomes:?}");
    assert!(
        accepted <= 4,
        "{accepted} group messages of 300 entries passed a burst of 1,000"
    );
    assert!(
        outcomes[accepted..]
            .iter()
            .all(|outcome| code(outcome) == Some(ErrorCode::RateLimited))
    );
    // Every entry came out of the burst (and the few tokens refilled meanwhile).
    let entries = relay.relay.metrics().outbox_entries();
    assert!(entries <= 300 * 5, "{entries} entries from one burst");
}

#[tokio::test]
async fn one_relay_fills_only_its_share_of_the_mailboxes_here() {
    let relay = start_tweaked(|config| config.limits.relay_mailbox_max_envelopes = 5, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::registered(&address).await;
    let to = bob.address();
    let forward = |sender: &Stranger, count: usize| -> Vec<ForwardItem> {
        (0..count)
            .map(|_| Stranger::item(sender.envelope_to(to, b"flood"), to))
            .collect()
    };

    // Each relay forwards for a user it is the home of.
    let sender = Stranger::new();
    let mut flooder = RawRelayPeer::connect(&address).await;
    flooder.vouch_for(&sender).await;
    let outcomes = flooder.forward(forward(&sender, 8), &[&sender]).await;
    let accepted = outcomes
        .iter()
        .filter(|outcome| **outcome == SendOutcome::Accepted)
        .count();
    assert_eq!(accepted, 5, "{outcomes:?}");
    assert!(
        outcomes[5..]
            .iter()
            .all(|outcome| code(outcome) == Some(ErrorCode::RateLimited))
    );
    // Another relay's forwards still get in.
    let neighbour = Stranger::new();
    let mut honest = RawRelayPeer::connect(&address).await;
    honest.vouch_for(&neighbour).await;
    assert_eq!(
        honest.forward(forward(&neighbour, 1), &[&neighbour]).await,
        vec![SendOutcome::Accepted]
    );

    // Once bob has taken them, the flooder's share is free again.
    assert_eq!(bob.drain().await.len(), 6);
    assert_eq!(
        flooder.forward(forward(&sender, 1), &[&sender]).await,
        vec![SendOutcome::Accepted]
    );
}

/// A `Descriptors` request carrying the genesis of a group of `members`, signed by a stranger.
fn stranger_genesis(members: &[UserId]) -> (GroupId, FederationRequest) {
    let admin = Stranger::new();
    let a = admin.address().user;
    let mut list = vec![member(a, Role::Admin)];
    list.extend(members.iter().map(|user| member(*user, Role::Member)));
    let v1 = common::genesis(&admin.account, list);
    let group = v1.descriptor.group;
    let versions = BoundedVec::new(vec![v1]).unwrap();
    (group, FederationRequest::Descriptors { versions })
}

#[tokio::test]
async fn strangers_cannot_make_a_relay_keep_descriptors_of_groups_it_has_no_member_of() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let bob = RawDevice::registered(&address).await;
    let mut peer = RawRelayPeer::connect(&address).await;

    // Made-up members only: refused, nothing kept.
    let (group, request) = stranger_genesis(&made_up(1023));
    let answer = peer.request(request).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::NotMember);
    assert_eq!(peer.group_version(group).await, 0);
    // Nor as a full request of sixteen groups' first versions.
    let mut versions = Vec::new();
    let mut groups = Vec::new();
    for _ in 0..tidings_protocol::federation::MAX_DESCRIPTORS_PER_REQUEST {
        let (group, request) = stranger_genesis(&made_up(3));
        let FederationRequest::Descriptors { versions: one } = request else {
            unreachable!()
        };
        versions.extend(one.into_vec());
        groups.push(group);
    }
    let answer = peer
        .request(FederationRequest::Descriptors {
            versions: BoundedVec::new(versions).unwrap(),
        })
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::NotMember);
    for group in groups {
        assert_eq!(peer.group_version(group).await, 0);
    }

    // A group with a member here is kept...
    let (group, request) = stranger_genesis(&[bob.address().user]);
    assert!(peer.request(request).await.is_ok());
    assert_eq!(peer.group_version(group).await, 1);

    // ...but one peer cannot make the relay keep them without bound: big descriptors naming
    // bob are refused once the peer has used its share.
    let mut members = made_up(1022);
    members.push(bob.address().user);
    let mut kept = 0;
    let mut limited = 0;
    for _ in 0..100 {
        let (_, request) = stranger_genesis(&members);
        match peer.request(request).await {
            Ok(_) => kept += 1,
            Err(answer) => {
                assert_eq!(answer.code, ErrorCode::RateLimited, "{answer}");
                limited += 1;
            }
        }
    }
    assert!(limited > 0, "100 descriptors of ~36 KiB all kept");
    let limits = &relay.relay.metrics().limits;
    assert_eq!(limits.refusals(Refusal::DescriptorRate), limited);
    assert_eq!(limits.refusals(Refusal::DescriptorNoMember), 2);
    assert!(kept < 100, "{kept}");
}

#[tokio::test]
async fn a_mailbox_holds_at_most_its_byte_quota() {
    let relay = start_tweaked(|config| config.limits.mailbox_max_bytes = 200_000, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let big = vec![7u8; 60_000];
    let to = bob.address();
    let envelope = |alice: &RawDevice| alice.envelope_to(to, &big).sign(&alice.device);

    for _ in 0..3 {
        let raw = envelope(&alice);
        assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
    }
    let raw = envelope(&alice);
    let outcome = sent(&mut alice, raw).await;
    assert_eq!(
        code(&outcome),
        Some(ErrorCode::QuotaExceeded),
        "{outcome:?}"
    );
    // Small ones still fit in what is left.
    let raw = alice.envelope_to(to, b"hi").sign(&alice.device);
    assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);

    // Once bob has taken them, there is room again.
    assert_eq!(bob.drain().await.len(), 4);
    let raw = envelope(&alice);
    assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
}

#[tokio::test]
async fn an_id_learned_in_advance_cannot_get_the_real_envelope_refused() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let mut mallory = RawDevice::registered(&address).await;
    let to = bob.address();
    let real = alice.envelope_to(to, b"the real one");

    // Mallory, a local user, and a stranger over federation both use the id first.
    let mut squatted = mallory.envelope_to(to, b"squat");
    squatted.id = real.id;
    let raw = squatted.sign(&mallory.device);
    assert_eq!(sent(&mut mallory, raw).await, SendOutcome::Accepted);
    let stranger = Stranger::new();
    let mut forged = tidings_protocol::Envelope {
        id: real.id,
        ..real.clone()
    };
    forged.sender = stranger.address();
    let mut peer = RawRelayPeer::connect(&address).await;
    peer.vouch_for(&stranger).await;
    let outcomes = peer
        .forward(
            vec![Stranger::item(forged.sign(&stranger.device), to)],
            &[&stranger],
        )
        .await;
    assert_eq!(outcomes, vec![SendOutcome::Accepted]);

    // Alice's envelope still goes through, once.
    let raw = real.sign(&alice.device);
    assert_eq!(sent(&mut alice, raw.clone()).await, SendOutcome::Accepted);
    assert_eq!(sent(&mut alice, raw).await, SendOutcome::Duplicate);
    let got = bob.drain().await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().any(|raw| {
        let envelope = raw.decode_unverified().unwrap();
        envelope.sender == alice.address() && envelope.body == b"the real one"
    }));
}

/// Sends a registration as `device` and returns the answer.
async fn try_register(device: &mut RawDevice) -> Result<Response, tidings_protocol::ErrorAnswer> {
    let cert = device.cert();
    device
        .request(tidings_protocol::client::Request::Register(Box::new(
            tidings_protocol::client::Register {
                cert,
                invite: None,
                list: None,
            },
        )))
        .await
}

#[tokio::test]
async fn one_source_registers_a_few_accounts_an_hour_not_thousands() {
    let relay = start_tweaked(
        |config| {
            config.registration.per_source_per_hour = 3;
            config.registration.per_source_burst = 3;
            config.registration.limit_loopback = true;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut registered = Vec::new();
    for _ in 0..3 {
        let device = RawDevice::registered(&address).await;
        registered.push(device);
    }
    let mut device = RawDevice::connect(&address).await;
    let answer = try_register(&mut device).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::RateLimited);
    let limits = &relay.relay.metrics().limits;
    assert_eq!(limits.refusals(Refusal::RegistrationRate), 1);
    // Devices already registered come back without a token.
    let again = &registered[0];
    let mut again =
        RawDevice::connect_as(&address, again.account.clone(), again.device.clone()).await;
    assert!(matches!(
        try_register(&mut again).await,
        Ok(Response::Registered { new: false, .. })
    ));
}

#[tokio::test]
async fn open_registration_stops_at_its_account_cap() {
    let relay = start_tweaked(|config| config.registration.max_accounts = 2, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    for _ in 0..2 {
        RawDevice::connect(&address).await.register().await;
    }
    let mut device = RawDevice::connect(&address).await;
    let answer = try_register(&mut device).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::RegistrationClosed);
    assert_eq!(
        relay.relay.metrics().limits.refusals(Refusal::AccountCap),
        1
    );
}

#[tokio::test]
async fn below_the_disk_floor_nothing_grows_the_store_but_reads_and_acks_go_on() {
    let with_metrics = |config: &mut tidings_relay::RelayConfig| {
        config.metrics_listen = Some("127.0.0.1:0".into());
    };
    let first = start_tweaked(with_metrics, None).await;
    let address = first.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let bob = RawDevice::registered(&address).await;
    let raw = alice
        .envelope_to(bob.address(), b"before")
        .sign(&alice.device);
    assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
    let keys = |device: &RawDevice| (device.account.clone(), device.device.clone());
    let (alice_keys, bob_keys) = (keys(&alice), keys(&bob));
    drop((alice, bob));
    let TestRelay { dir, relay } = first;
    relay.shutdown().await;

    // The same relay, with a floor above any free space there is.
    let relay = restart_tweaked(dir.path(), |config| {
        with_metrics(config);
        config.limits.min_free_disk_bytes = u64::MAX;
    })
    .await;
    let address = relay.tcp_dial_addr().unwrap();
    let full = |answer: &tidings_protocol::ErrorAnswer| answer.code == ErrorCode::StorageFull;
    let mut alice = RawDevice::connect_as(&address, alice_keys.0, alice_keys.1).await;
    let mut bob = RawDevice::connect_as(&address, bob_keys.0, bob_keys.1).await;

    // Alice cannot send, nor upload keys.
    let raw = alice
        .envelope_to(bob.address(), b"after")
        .sign(&alice.device);
    assert!(matches!(sent(&mut alice, raw).await, SendOutcome::Rejected(answer) if full(&answer)));
    let upload = tidings_protocol::client::UploadKeys {
        identity: None,
        one_time_keys: BoundedVec::new(Vec::new()).unwrap(),
        fallback: None,
    };
    let answer = alice
        .request(tidings_protocol::client::Request::UploadKeys(Box::new(
            upload,
        )))
        .await;
    assert!(full(&answer.unwrap_err()));
    // Bob still reads and acks what he had.
    let got = bob.drain().await;
    assert_eq!(got.len(), 1);

    // A newcomer cannot register.
    let mut carol = RawDevice::connect(&address).await;
    assert!(full(&try_register(&mut carol).await.unwrap_err()));
    assert!(ErrorCode::StorageFull.is_transient());

    // Another relay's forward is refused, for every recipient.
    let mut peer = RawRelayPeer::connect(&address).await;
    let stranger = Stranger::new();
    let to = stranger.address();
    let outcomes = peer
        .forward(
            vec![Stranger::item(stranger.envelope_to(to, b"x"), to)],
            &[&stranger],
        )
        .await;
    assert!(matches!(&outcomes[..], [SendOutcome::Rejected(answer)] if full(answer)));

    // /healthz and the metrics say why.
    let metrics_at = relay.metrics_addr().unwrap();
    let (status, body) = common::http_get(metrics_at, "/healthz").await;
    assert_eq!(status, 503);
    assert!(body.contains("free disk space"), "{body}");
    let (_, text) = common::http_get(metrics_at, "/metrics").await;
    assert_eq!(common::metric(&text, "tidings_disk_low", &[]), Some(1.0));
    assert!(common::metric(&text, "tidings_refused_total", &["reason=\"DiskLow\""]) >= Some(2.0));
    relay.shutdown().await;
}

/// The text bodies of `device`'s mailbox, in order (draining and acking it).
async fn bodies(device: &mut RawDevice) -> Vec<String> {
    device
        .drain()
        .await
        .into_iter()
        .map(|raw| String::from_utf8(raw.open().unwrap().body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_failed_commit_is_an_error_answer_and_nothing_accepted_is_lost() {
    let switch = FaultSwitch::default();
    let TestRelay { dir, relay } = start_tweaked(|_| {}, Some(switch.clone())).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let bob = RawDevice::registered(&address).await;
    for text in ["before 1", "before 2"] {
        let raw = alice
            .envelope_to(bob.address(), text.as_bytes())
            .sign(&alice.device);
        assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
    }

    // The disk fails: the relay refuses with a transient storage error.
    switch.fail();
    let during = alice
        .envelope_to(bob.address(), b"during")
        .sign(&alice.device);
    let outcome = sent(&mut alice, during.clone()).await;
    assert_eq!(code(&outcome), Some(ErrorCode::Storage), "{outcome:?}");

    // The operator fixes the disk and restarts the relay; Alice's device sends it again.
    switch.heal();
    let keys = |device: &RawDevice| (device.account.clone(), device.device.clone());
    let (alice_keys, bob_keys) = (keys(&alice), keys(&bob));
    drop((alice, bob));
    relay.shutdown().await;
    let relay = restart_tweaked(dir.path(), |_| {}).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect_as(&address, alice_keys.0, alice_keys.1).await;
    assert_eq!(sent(&mut alice, during).await, SendOutcome::Accepted);

    let mut bob = RawDevice::connect_as(&address, bob_keys.0, bob_keys.1).await;
    assert_eq!(bodies(&mut bob).await, ["before 1", "before 2", "during"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_relay_whose_disk_recovers_takes_messages_again_without_a_restart() {
    let switch = FaultSwitch::default();
    let TestRelay { dir: _dir, relay } = start_tweaked(|_| {}, Some(switch.clone())).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let mut bob = RawDevice::registered(&address).await;
    let envelope = |text: &str| {
        alice
            .envelope_to(bob.address(), text.as_bytes())
            .sign(&alice.device)
    };
    let before = envelope("before");
    let during = [envelope("during 1"), envelope("during 2")];
    let after = envelope("after");
    assert_eq!(sent(&mut alice, before).await, SendOutcome::Accepted);

    // Two failed commits in a row (the relay tries to reopen its database after each).
    switch.fail();
    for raw in &during {
        let outcome = sent(&mut alice, raw.clone()).await;
        assert_eq!(code(&outcome), Some(ErrorCode::Storage), "{outcome:?}");
    }

    // The disk is back; the same relay process accepts the retries and what comes next.
    switch.heal();
    for raw in during {
        assert_eq!(sent(&mut alice, raw).await, SendOutcome::Accepted);
    }
    assert_eq!(sent(&mut alice, after).await, SendOutcome::Accepted);
    assert_eq!(
        bodies(&mut bob).await,
        ["before", "during 1", "during 2", "after"]
    );
    relay.shutdown().await;
}
