//! Presence over the wire from untrusted peers: a relay may not watch in another relay's
//! users' name, changes from relays we did not ask are ignored, and ephemeral envelopes
//! are checked like any other.

use crate::common::{self, RawDevice, RawRelayPeer, start_relays};
use ed25519_dalek::SigningKey;
use tidings_protocol::{
    BoundedVec, ErrorCode, UserId,
    client::{Request, Response},
    federation::FederationRequest,
    presence::{PresenceReport, PresenceState},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_watch_presence_in_the_name_of_users_it_does_not_home() {
    let relays = start_relays(1).await;
    let address = relays[0].relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let bob_id = UserId::from(&bob.account.verifying_key());
    let stranger = UserId::from(&SigningKey::from_bytes(&[9; 32]).verifying_key());

    let mut impostor = RawRelayPeer::connect(&address).await;
    let answer = impostor
        .request(FederationRequest::WatchPresence {
            watcher: stranger,
            users: BoundedVec::new(vec![bob_id]).unwrap(),
        })
        .await;
    assert!(
        matches!(&answer, Err(refusal) if refusal.code == ErrorCode::WrongRelay),
        "{answer:?}"
    );
    // A change pushed by a relay nobody asked is taken and ignored (no panic, stream lives).
    let pushed = impostor
        .request(FederationRequest::PresenceChanged {
            report: PresenceReport {
                user: stranger,
                state: PresenceState::Online,
            },
            watchers: BoundedVec::new(vec![bob_id]).unwrap(),
        })
        .await;
    assert!(pushed.is_ok(), "{pushed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_requests_with_stored_kinds_or_forged_senders_are_refused() {
    let relays = start_relays(1).await;
    let address = relays[0].relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;

    // A chat message sent as "ephemeral" is refused: only typing notices skip the store.
    let now = tidings_protocol::now_ms();
    let mut message = alice.envelope_to(bob.address(), b"hi");
    message.sent_at_ms = now;
    let message = message.sign(&alice.device);
    let answer = alice
        .request(Request::Ephemeral { envelope: message })
        .await;
    assert!(
        matches!(&answer, Err(refusal) if refusal.code == ErrorCode::Malformed),
        "{answer:?}"
    );
    // A typing notice sent to be stored is refused: it would outlive its moment.
    let typing_body = tidings_protocol::presence::TypingBody { typing: true }.encode();
    let mut stored = alice.envelope_to(bob.address(), &typing_body);
    stored.kind = tidings_protocol::Kind::Typing;
    stored.sent_at_ms = now;
    let answer = alice.send(vec![stored.sign(&alice.device)]).await;
    let Ok(tidings_protocol::client::Response::Sent { outcomes }) = answer else {
        panic!("{answer:?}");
    };
    assert!(
        matches!(&outcomes[0], tidings_protocol::client::SendOutcome::Rejected(r) if r.code == ErrorCode::Malformed),
        "{outcomes:?}"
    );
    // Bob's typing notice passed on by Alice's device is refused.
    let body = tidings_protocol::presence::TypingBody { typing: true }.encode();
    let mut forged = bob.envelope_to(alice.address(), &body);
    forged.kind = tidings_protocol::Kind::Typing;
    forged.sent_at_ms = now;
    let forged = forged.sign(&bob.device);
    let answer = alice.request(Request::Ephemeral { envelope: forged }).await;
    assert!(
        matches!(&answer, Err(refusal) if refusal.code == ErrorCode::SenderMismatch),
        "{answer:?}"
    );
}

/// A signed typing notice from `from` to `to`.
fn typing(from: &RawDevice, to: tidings_protocol::Address) -> tidings_protocol::RawEnvelope {
    let mut notice = from.envelope_to(
        to,
        &tidings_protocol::presence::TypingBody { typing: true }.encode(),
    );
    notice.kind = tidings_protocol::Kind::Typing;
    notice.sent_at_ms = tidings_protocol::now_ms();
    notice.sign(&from.device)
}

/// The number of devices a typing notice reached, as the relay answers it.
fn reached(answer: Result<Response, tidings_protocol::ErrorAnswer>) -> u32 {
    match answer {
        Ok(Response::EphemeralPassed { reached }) => reached,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_tells_watchers_and_typists_nothing_that_changes_with_being_online() {
    use tidings_protocol::{client::RelayFrame, presence::Visibility};
    let relays = start_relays(1).await;
    let address = relays[0].relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let set = |visibility| Request::SetPresence {
        visibility,
        allowed: BoundedVec::new(Vec::new()).unwrap(),
    };
    assert!(bob.request(set(Visibility::Nobody)).await.is_ok());
    let watched = alice
        .request(Request::WatchPresence {
            users: BoundedVec::new(vec![bob.address().user]).unwrap(),
        })
        .await;
    let Ok(Response::Presence { reports }) = watched else {
        panic!("{watched:?}");
    };
    assert_eq!(reports[0].state, PresenceState::Hidden);

    // Bob comes online on another stream of his device; Alice types to him.
    let mut bob_live =
        RawDevice::connect_as(&address, bob.account.clone(), bob.device.clone()).await;
    bob_live.drain().await;
    let answer = alice
        .request(Request::Ephemeral {
            envelope: typing(&alice, bob.address()),
        })
        .await;
    assert_eq!(
        reached(answer),
        0,
        "the answer told Alice that Bob is online"
    );
    // He still sees her typing.
    loop {
        match bob_live.read().await {
            Some(RelayFrame::Ephemeral(_)) => break,
            Some(_) => continue,
            None => panic!("Bob's stream closed"),
        }
    }
    // So does a relay asking on its own behalf: nothing about Bob's devices.
    let mut relay = RawRelayPeer::connect(&address).await;
    let stranger = common::Stranger::new();
    relay.vouch_for(&stranger).await;
    let mut notice = stranger.envelope_to(bob.address(), b"").open().unwrap();
    notice.kind = tidings_protocol::Kind::Typing;
    notice.body = tidings_protocol::presence::TypingBody { typing: true }.encode();
    notice.sent_at_ms = tidings_protocol::now_ms();
    let passed = relay
        .request(FederationRequest::Ephemeral {
            envelope: notice.sign(&stranger.device),
            recipients: BoundedVec::new(vec![bob.address().user]).unwrap(),
            cert: stranger.cert(),
        })
        .await;
    assert!(
        matches!(
            passed,
            Ok(tidings_protocol::federation::FederationResponse::EphemeralPassed { reached: 0 })
        ),
        "{passed:?}"
    );

    // Bob leaves, then lets everyone see him: the first report Alice gets is that one,
    // nothing for his coming and going before.
    drop(bob_live);
    assert!(bob.request(set(Visibility::Everyone)).await.is_ok());
    let first = loop {
        match alice.read().await {
            Some(RelayFrame::Presence(report)) => break report,
            Some(_) => continue,
            None => panic!("Alice's stream closed"),
        }
    };
    assert_eq!(first.user, bob.address().user);
    assert_ne!(
        first.state,
        PresenceState::Hidden,
        "a transition leaked as Hidden"
    );

    // Allowed now, Alice's typing answer counts Bob's live device again.
    let mut bob_live =
        RawDevice::connect_as(&address, bob.account.clone(), bob.device.clone()).await;
    bob_live.drain().await;
    let answer = alice
        .request(Request::Ephemeral {
            envelope: typing(&alice, bob.address()),
        })
        .await;
    assert_eq!(reached(answer), 1);
}
