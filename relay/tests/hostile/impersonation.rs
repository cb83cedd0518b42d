//! A relay (or a bare libp2p peer posing as one) hands over envelopes in someone else's name:
//! the receiving relay ties every sender device to its account by a certificate and the
//! handing relay to that account's home, for stored envelopes and typing notices alike.

use std::time::Duration;

use crate::common::{RawDevice, RawRelayPeer, Stranger, start_relay};
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, Envelope, EnvelopeId, ErrorCode, Kind, Recipient,
    client::{RelayFrame, Request, Response, SendOutcome},
    federation::FederationRequest,
    now_ms,
    presence::TypingBody,
};
use tidings_relay::RegistrationPolicy;

fn code(outcome: &SendOutcome) -> Option<ErrorCode> {
    match outcome {
        SendOutcome::Rejected(answer) => Some(answer.code),
        _ => None,
    }
}

/// An envelope signed by `device`'s key whose sender claims `sender`.
fn as_sender(
    device: &Stranger,
    sender: Address,
    to: Address,
    kind: Kind,
    body: Vec<u8>,
) -> tidings_protocol::RawEnvelope {
    Envelope {
        id: EnvelopeId::random(),
        sender,
        recipient: Recipient::Direct(to),
        sent_at_ms: now_ms(),
        kind,
        body,
        blobs: Default::default(),
    }
    .sign(&device.device)
}

#[tokio::test]
async fn a_relay_cannot_hand_over_envelopes_in_another_accounts_name() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let alice = Stranger::new();
    let mallory = Stranger::new();
    let mut rogue = RawRelayPeer::connect(&address).await;
    rogue.vouch_for(&mallory).await;
    // Mallory's rogue relay is also, for the DHT, Alice's home: the device binding alone
    // must stop her.
    rogue.vouch_for(&alice).await;

    let claimed = Address {
        user: alice.address().user,
        device: mallory.address().device,
    };
    let forged = as_sender(
        &mallory,
        claimed,
        bob.address(),
        Kind::Message,
        b"It's Alice".to_vec(),
    );
    // With Mallory's own certificate, with none, and with one she signed for Alice's account.
    let mut fake_cert = DeviceCert::issue(&mallory.account, claimed.device, 1);
    fake_cert.user = claimed.user;
    for certs in [vec![mallory.cert()], vec![], vec![fake_cert]] {
        let items = BoundedVec::new(vec![Stranger::item(forged.clone(), bob.address())]).unwrap();
        let answer = rogue
            .request(FederationRequest::Forward {
                items,
                certs: BoundedVec::new(certs).unwrap(),
            })
            .await;
        match answer {
            Ok(tidings_protocol::federation::FederationResponse::Stored { outcomes }) => {
                assert_eq!(code(&outcomes[0]), Some(ErrorCode::BadCertificate));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // A genuine envelope of Carol, whose home is another relay, handed over by the rogue.
    let carol = Stranger::new();
    let carols_home = RawRelayPeer::connect(&address).await;
    carols_home.vouch_for(&carol).await;
    let genuine = carol.envelope_to(bob.address(), b"hi from carol");
    let outcomes = rogue
        .forward(
            vec![Stranger::item(genuine.clone(), bob.address())],
            &[&carol],
        )
        .await;
    assert_eq!(code(&outcomes[0]), Some(ErrorCode::WrongOrigin));
    // A sender no relay vouches for: nobody can tell where she lives yet (retry later).
    let nobody = Stranger::new();
    let outcomes = rogue
        .forward(
            vec![Stranger::item(
                nobody.envelope_to(bob.address(), b"?"),
                bob.address(),
            )],
            &[&nobody],
        )
        .await;
    assert_eq!(code(&outcomes[0]), Some(ErrorCode::Unavailable));

    // Mallory in her own name is fine: that is what her relay is for.
    let honest = mallory.envelope_to(bob.address(), b"hi, Mallory here");
    let outcomes = rogue
        .forward(
            vec![Stranger::item(honest.clone(), bob.address())],
            &[&mallory],
        )
        .await;
    assert_eq!(outcomes, [SendOutcome::Accepted]);
    assert_eq!(bob.drain().await, vec![honest]);
    let metrics = relay.relay.metrics();
    assert_eq!(metrics.envelopes_rejected(ErrorCode::BadCertificate), 3);
    assert_eq!(metrics.envelopes_rejected(ErrorCode::WrongOrigin), 1);
}

#[tokio::test]
async fn typing_notices_cannot_be_forged_in_another_accounts_name() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    assert!(matches!(
        bob.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));
    let alice = Stranger::new();
    let mallory = Stranger::new();
    let mut rogue = RawRelayPeer::connect(&address).await;
    rogue.vouch_for(&mallory).await;
    rogue.vouch_for(&alice).await;
    let typing = TypingBody { typing: true }.encode();
    let claimed = Address {
        user: alice.address().user,
        device: mallory.address().device,
    };
    let forged = as_sender(
        &mallory,
        claimed,
        bob.address(),
        Kind::Typing,
        typing.clone(),
    );
    let answer = rogue
        .request(FederationRequest::Ephemeral {
            envelope: forged,
            recipients: BoundedVec::new(vec![bob.address().user]).unwrap(),
            cert: mallory.cert(),
        })
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadCertificate);
    // Mallory typing as herself reaches Bob.
    let own = as_sender(
        &mallory,
        mallory.address(),
        bob.address(),
        Kind::Typing,
        typing,
    );
    let answer = rogue
        .request(FederationRequest::Ephemeral {
            envelope: own.clone(),
            recipients: BoundedVec::new(vec![bob.address().user]).unwrap(),
            cert: mallory.cert(),
        })
        .await;
    assert!(answer.is_ok(), "{answer:?}");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(300), bob.read()).await {
            Ok(Some(RelayFrame::Ephemeral(raw))) => {
                seen.push(raw.decode_unverified().unwrap().sender);
                break;
            }
            Ok(Some(_)) => continue,
            _ => break,
        }
    }
    assert_eq!(
        seen,
        [mallory.address()],
        "only Mallory's own notice reached Bob"
    );
}

/// Binding senders must not become a lookup amplifier: a batch of 256 envelopes from 256
/// made-up senders nobody vouches for costs a bounded number of DHT lookups, and every one
/// is answered (to retry later), none stored.
#[tokio::test]
async fn binding_many_unknown_senders_costs_bounded_lookups() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let senders: Vec<Stranger> = (0..256).map(|_| Stranger::new()).collect();
    let items = senders
        .iter()
        .map(|sender| Stranger::item(sender.envelope_to(bob.address(), b"?"), bob.address()))
        .collect();
    let refs: Vec<&Stranger> = senders.iter().collect();
    let mut rogue = RawRelayPeer::connect(&address).await;
    let before = relay.relay.dht_stats().lookups();
    let outcomes = rogue.forward(items, &refs).await;
    let spent = relay.relay.dht_stats().lookups() - before;
    assert!(spent <= 128, "one forward ran {spent} DHT lookups");
    assert_eq!(outcomes.len(), 256);
    assert!(
        outcomes
            .iter()
            .all(|outcome| code(outcome) == Some(ErrorCode::Unavailable)),
        "{outcomes:?}"
    );
}
