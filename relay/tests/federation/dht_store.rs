//! The DHT record store against a bare Kademlia peer: records are held no longer than the
//! relay allows whatever expiry their signer chose, one peer stores only its share, and
//! records not vouched for by the relay they name fill only half of the byte budget.

use std::time::{Duration, Instant};

use crate::common::{RogueRelay, home_record_naming, start_relays_tweaked};
use ed25519_dalek::SigningKey;

const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

fn account() -> SigningKey {
    SigningKey::from_bytes(&rand::random())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_stores_only_its_share_and_no_record_is_held_for_years() {
    let relays = start_relays_tweaked(1, |config| config.network.dht_records_per_peer = 20).await;
    let relay = &relays[0].relay;
    let rogue = RogueRelay::connect(&relay.tcp_dial_addr().unwrap()).await;
    let me = rogue.peer_id.to_string();

    let before = relay.dht_stats().stored();
    let mut keys = Vec::new();
    for _ in 0..30 {
        let record = home_record_naming(&account(), &me, TEN_YEARS_MS);
        keys.push(record.key.clone());
        assert!(rogue.put(record, relay.peer_id()).await);
    }
    assert_eq!(relay.dht_stats().stored() - before, 20);
    assert_eq!(relay.dht_stats().over_limit(), 10);

    // The relay hands the record out with the expiry it keeps: two days at most, not ten
    // years.
    let held = rogue
        .get(keys[0].clone())
        .await
        .expect("the relay holds the first record");
    let expires = held.expires.expect("a held record expires");
    assert!(
        expires <= Instant::now() + Duration::from_secs(49 * 3600),
        "held for {:?}",
        expires - Instant::now()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_not_vouched_for_by_their_home_relay_fill_only_half_the_store() {
    let relays = start_relays_tweaked(1, |config| config.network.dht_store_kib = 16).await;
    let relay = &relays[0].relay;
    let rogue = RogueRelay::connect(&relay.tcp_dial_addr().unwrap()).await;

    // Records naming some other relay, sent by the rogue: not vouched for.
    let elsewhere = libp2p::PeerId::random().to_string();
    let before = relay.dht_stats().stored();
    for _ in 0..100 {
        let record = home_record_naming(&account(), &elsewhere, 3600 * 1000);
        assert!(rogue.put(record, relay.peer_id()).await);
    }
    let unvouched = relay.dht_stats().stored() - before;
    assert!(unvouched > 0 && unvouched < 100, "{unvouched} stored");

    // Records naming the rogue itself, from the rogue: vouched, they use the other half.
    let me = rogue.peer_id.to_string();
    for _ in 0..100 {
        let record = home_record_naming(&account(), &me, 3600 * 1000);
        assert!(rogue.put(record, relay.peer_id()).await);
    }
    let vouched = relay.dht_stats().stored() - before - unvouched;
    assert!(vouched > 0 && vouched < 100, "{vouched} stored");
}
