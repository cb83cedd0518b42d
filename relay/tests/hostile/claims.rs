//! Key claims from other relays: a claim names its requesting user, who must be homed at the
//! asking relay; one-time keys go out at a bounded rate per user (the fallback key after
//! that), and claims per relay are rate-limited, so no relay can drain anyone's keys.

use crate::common::{
    RawDevice, RawRelayPeer, RogueRelay, start_relays, start_relays_tweaked, upload_keys,
};
use ed25519_dalek::SigningKey;
use tidings_protocol::{
    BoundedVec, ErrorCode, KeyBundle, UserId,
    client::{Request, Response},
    federation::{FederationRequest, FederationResponse},
};

/// How many one-time keys the relay still holds for `device`'s user.
async fn keys_held(device: &mut RawDevice) -> u32 {
    let empty = tidings_protocol::client::UploadKeys {
        identity: None,
        one_time_keys: BoundedVec::new(Vec::new()).unwrap(),
        fallback: None,
    };
    match device.request(Request::UploadKeys(Box::new(empty))).await {
        Ok(Response::KeysUploaded { one_time_keys }) => one_time_keys,
        other => panic!("unexpected {other:?}"),
    }
}

/// Tallies answers: one-time keys handed out, fallback keys, rate-limited refusals.
#[derive(Debug, Default)]
struct Tally {
    one_time: usize,
    fallback: usize,
    limited: usize,
}

impl Tally {
    fn add(&mut self, answer: Result<KeyBundle, tidings_protocol::ErrorAnswer>) {
        match answer {
            Ok(bundle) if bundle.prekey.fallback => self.fallback += 1,
            Ok(_) => self.one_time += 1,
            Err(refusal) if refusal.code == ErrorCode::RateLimited => self.limited += 1,
            Err(refusal) => panic!("unexpected refusal {refusal}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_relay_cannot_drain_a_users_one_time_keys() {
    let relays = start_relays_tweaked(1, |config| {
        config.claims.one_time_keys_per_user_per_hour = 10;
        config.claims.relay_claims_per_sec = 1;
        config.claims.relay_claims_burst = 120;
    })
    .await;
    let relay = &relays[0].relay;
    let address = relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let uploaded = bob
        .request(Request::UploadKeys(Box::new(upload_keys(&bob.device, 100))))
        .await;
    assert_eq!(uploaded, Ok(Response::KeysUploaded { one_time_keys: 100 }));
    let bob_id = bob.address();

    // A rogue relay with a user of its own (its home record in the DHT names the rogue),
    // so its claims pass the requester check: only the limits stand in its way.
    let rogue = RogueRelay::connect(&address).await;
    let mallory = SigningKey::from_bytes(&rand::random());
    assert!(
        rogue
            .put(rogue.home_record_naming_me(&mallory), relay.peer_id())
            .await
    );
    let requester = UserId::from(&mallory.verifying_key());
    let mut federation = rogue.federation(relay.peer_id()).await;

    let mut tally = Tally::default();
    // One batch asking for Bob a hundred times...
    let batch = federation
        .request(FederationRequest::ClaimBundles {
            devices: BoundedVec::new(vec![bob_id; 100]).unwrap(),
            requester,
        })
        .await;
    match batch {
        Ok(FederationResponse::Bundles { bundles }) => {
            for answer in bundles.into_vec() {
                tally.add(answer);
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    // ... then one claim at a time.
    for _ in 0..60 {
        let answer = federation
            .request(FederationRequest::Claim {
                device: bob_id,
                requester,
            })
            .await;
        tally.add(answer.map(|response| match response {
            FederationResponse::Bundle(bundle) => *bundle,
            other => panic!("unexpected {other:?}"),
        }));
    }
    assert!(tally.one_time <= 10, "{tally:?}");
    assert!(tally.fallback > 0, "{tally:?}");
    assert!(
        tally.limited > 0,
        "the relay's claim rate was not limited: {tally:?}"
    );
    assert!(keys_held(&mut bob).await >= 90, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_naming_a_requester_not_homed_at_the_asking_relay_is_refused() {
    let relays = start_relays(2).await;
    let (a, b) = (&relays[0].relay, &relays[1].relay);
    let mut alice = RawDevice::connect(&a.tcp_dial_addr().unwrap()).await;
    alice.register().await;
    let b_address = b.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&b_address).await;
    bob.register().await;
    let uploaded = bob
        .request(Request::UploadKeys(Box::new(upload_keys(&bob.device, 5))))
        .await;
    assert!(uploaded.is_ok(), "{uploaded:?}");
    let bob_id = bob.address();

    // Alice's own relay claims for her: fine.
    let claimed = alice.request(Request::ClaimBundle { device: bob_id }).await;
    assert!(matches!(claimed, Ok(Response::Bundle(_))), "{claimed:?}");

    // A stranger claiming in Alice's name is refused, one claim or a batch.
    let mut stranger = RawRelayPeer::connect(&b_address).await;
    let alice_id = alice.address().user;
    let single = stranger
        .request(FederationRequest::Claim {
            device: bob_id,
            requester: alice_id,
        })
        .await;
    assert!(
        matches!(&single, Err(refusal) if refusal.code == ErrorCode::WrongRelay),
        "{single:?}"
    );
    let batch = stranger
        .request(FederationRequest::ClaimBundles {
            devices: BoundedVec::new(vec![bob_id]).unwrap(),
            requester: alice_id,
        })
        .await;
    assert!(
        matches!(&batch, Err(refusal) if refusal.code == ErrorCode::WrongRelay),
        "{batch:?}"
    );
    // In the name of nobody known: refused too (transient, the record may come later).
    let nobody = UserId::from(&SigningKey::from_bytes(&rand::random()).verifying_key());
    let unknown = stranger
        .request(FederationRequest::Claim {
            device: bob_id,
            requester: nobody,
        })
        .await;
    assert!(
        matches!(&unknown, Err(refusal) if refusal.code == ErrorCode::Unavailable),
        "{unknown:?}"
    );
    // Bob's keys went to Alice's one honest claim only.
    assert_eq!(keys_held(&mut bob).await, 4);
}
