//! Lookup amplification: a cheap request must not make a relay run many DHT queries.
//! Whether a user is local is a store read; one request may cause at most a bounded number
//! of lookups; failed lookups are remembered for a while.

use crate::common::{self, RawDevice, RawRelayPeer, start_relays};
use ed25519_dalek::SigningKey;
use tidings_protocol::{
    BoundedVec, Envelope, EnvelopeId, Kind, Recipient, UserId,
    client::{Request, Response},
    federation::{FederationRequest, FederationResponse},
    now_ms,
    presence::TypingBody,
};

fn random_users(count: usize) -> Vec<UserId> {
    (0..count)
        .map(|_| UserId::from(&SigningKey::from_bytes(&rand::random()).verifying_key()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_for_a_thousand_recipients_costs_the_receiving_relay_no_lookup_per_recipient()
{
    let relays = start_relays(2).await;
    let b = &relays[1].relay;
    let mut bob = RawDevice::connect(&b.tcp_dial_addr().unwrap()).await;
    bob.register().await;

    let typist = common::Stranger::new();
    let notice = Envelope {
        id: EnvelopeId::random(),
        sender: typist.address(),
        recipient: Recipient::Direct(bob.address()),
        sent_at_ms: now_ms(),
        kind: Kind::Typing,
        body: TypingBody { typing: true }.encode(),
        blobs: Default::default(),
    }
    .sign(&typist.device);
    let mut recipients = random_users(1023);
    recipients.push(bob.address().user);

    // The stranger is the typist's home relay (its sender binding then holds).
    let mut stranger = RawRelayPeer::connect(&b.tcp_dial_addr().unwrap()).await;
    stranger.vouch_for(&typist).await;
    let before = b.dht_stats().lookups();
    let answer = stranger
        .request(FederationRequest::Ephemeral {
            envelope: notice,
            recipients: BoundedVec::new(recipients).unwrap(),
            cert: typist.cert(),
        })
        .await;
    assert!(
        matches!(answer, Ok(FederationResponse::EphemeralPassed { .. })),
        "{answer:?}"
    );
    // At most the one lookup of the typist's home, none per recipient.
    assert!(b.dht_stats().lookups() - before <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_many_unknown_users_costs_bounded_lookups_and_misses_are_remembered() {
    let relays = start_relays(2).await;
    let a = &relays[0].relay;
    let mut alice = RawDevice::connect(&a.tcp_dial_addr().unwrap()).await;
    alice.register().await;

    let watch = |users: Vec<UserId>| Request::WatchPresence {
        users: BoundedVec::new(users).unwrap(),
    };
    // A thousand users nobody has heard of: a bounded number of lookups.
    let before = a.dht_stats().lookups();
    let answer = alice.request(watch(random_users(1024))).await;
    assert!(
        matches!(answer, Ok(Response::Presence { .. })),
        "{answer:?}"
    );
    let spent = a.dht_stats().lookups() - before;
    assert!(spent <= 128, "one watch ran {spent} DHT lookups");

    // A few unknown users, watched twice: the second time their misses are remembered.
    let few = random_users(20);
    let before = a.dht_stats().lookups();
    alice.request(watch(few.clone())).await.unwrap();
    assert_eq!(a.dht_stats().lookups() - before, 20);
    alice.request(watch(few)).await.unwrap();
    assert_eq!(
        a.dht_stats().lookups() - before,
        20,
        "failed lookups were run again"
    );
}
