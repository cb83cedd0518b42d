//! Home records: forged, rolled-back and expired records are refused by every relay, whether
//! they come through the DHT or from a device.

use std::time::Duration;

use crate::common::{RawDevice, start_relays, tcp_swarm};
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::{
    StreamProtocol,
    kad::{self, Quorum, Record, RecordKey, store::MemoryStore},
    swarm::SwarmEvent,
};
use tidings_protocol::{
    BoundedVec, ErrorCode, HomeRecord,
    client::{Request, Response},
    home::HOME_RECORD_LIFETIME_MS,
    now_ms,
};
use tidings_relay::RunningRelay;

fn home(account: &SigningKey, relay: &RunningRelay, seq: u64, expires: u64) -> HomeRecord {
    let addrs = BoundedVec::new(vec![relay.tcp_dial_addr().unwrap().to_string()]).unwrap();
    HomeRecord::sign(account, relay.peer_id().to_string(), addrs, seq, expires)
}

/// A peer that speaks the Tidings DHT protocol and stores whatever it is told to at every relay.
async fn rogue_put(relays: &[&RunningRelay], records: Vec<HomeRecord>) {
    let mut swarm = tcp_swarm(libp2p::identity::Keypair::generate_ed25519(), |key| {
        let peer = key.public().to_peer_id();
        let config = kad::Config::new(StreamProtocol::new("/tidings/kad/1"));
        kad::Behaviour::with_config(peer, MemoryStore::new(peer), config)
    });
    let peers: Vec<_> = relays.iter().map(|relay| relay.peer_id()).collect();
    for relay in relays {
        let address = relay.listen_addrs()[0].clone();
        swarm.behaviour_mut().add_address(&relay.peer_id(), address);
    }
    let mut pending = Vec::new();
    for record in records {
        let record = Record::new(
            RecordKey::new(&HomeRecord::dht_key(&record.user)),
            record.encode(),
        );
        pending.push(swarm.behaviour_mut().put_record_to(
            record,
            peers.clone().into_iter(),
            Quorum::All,
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .expect("rogue puts did not finish");
        if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed { id, step, .. }) = event
            && step.last
        {
            pending.retain(|query| *query != id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_expired_records_are_refused_by_every_relay() {
    let relays = start_relays(3).await;
    let address = relays[2].relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let base = now_ms() + 60_000;
    let genuine = home(
        &bob.account,
        &relays[2].relay,
        base,
        now_ms() + HOME_RECORD_LIFETIME_MS,
    );
    assert_eq!(
        bob.request(Request::PublishHome(Box::new(genuine.clone())))
            .await,
        Ok(Response::HomePublished)
    );
    for relay in &relays {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while relay.relay.lookup_home(genuine.user).await != Some(genuine.clone()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "genuine record not found"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Pointing Bob's user id at relay 0: tampered, rolled back, and expired.
    let mut tampered = genuine.clone();
    tampered.relay = relays[0].relay.peer_id().to_string();
    let stale = home(
        &bob.account,
        &relays[0].relay,
        base - 1,
        now_ms() + HOME_RECORD_LIFETIME_MS,
    );
    let expired = home(&bob.account, &relays[0].relay, base + 1, now_ms() - 1);
    let before: Vec<u64> = relays
        .iter()
        .map(|r| r.relay.dht_stats().rejected())
        .collect();
    let targets: Vec<&RunningRelay> = relays.iter().map(|r| &r.relay).collect();
    rogue_put(
        &targets,
        vec![tampered.clone(), stale.clone(), expired.clone()],
    )
    .await;

    for (relay, before) in relays.iter().zip(before) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while relay.relay.dht_stats().rejected() < before + 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a relay took a bad record"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            relay.relay.lookup_home(genuine.user).await,
            Some(genuine.clone())
        );
    }

    // The same three through the client protocol.
    for bad in [tampered, stale, expired] {
        let answer = bob.request(Request::PublishHome(Box::new(bad))).await;
        assert_eq!(answer.unwrap_err().code, ErrorCode::BadHomeRecord);
    }
    // And someone else's record is not Bob's to publish.
    let mallory = SigningKey::from_bytes(&[42; 32]);
    let theirs = home(&mallory, &relays[2].relay, 1, now_ms() + 60_000);
    let answer = bob.request(Request::PublishHome(Box::new(theirs))).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadHomeRecord);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_ends_at_the_first_valid_record_without_asking_on() {
    let relays = start_relays(3).await;
    let mut bob = RawDevice::connect(&relays[2].relay.tcp_dial_addr().unwrap()).await;
    bob.register().await;
    let user = bob.address().user;

    // Once relay 0 holds Bob's record itself (replicated to it), its lookup is answered by
    // that record: the query stops there and asks no other relay.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (found, stats) = relays[0].relay.lookup_home_with_stats(user).await;
        let found = found.expect("Bob's home record not found");
        assert_eq!(found.relay, relays[2].relay.peer_id().to_string());
        if stats.requests_to_first_record == Some(0) {
            assert_eq!(stats.requests, 0, "the query ran on: {stats:?}");
            break;
        }
        // Found through another relay: the query stopped at that first record.
        assert_eq!(
            Some(stats.requests),
            stats.requests_to_first_record,
            "{stats:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record never reached relay 0"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
