//! A relay that was down is forwarded to as soon as it connects again, not after the pause
//! its outage started.

use std::time::Duration;

use tidings_protocol::{
    Address, RawEnvelope,
    client::{Response, SendOutcome},
};
use tidings_relay::testing::Network;

use crate::{
    common::RawDevice,
    order::{take, take_until},
};

/// The pause after a failed forward: far longer than the test waits for delivery.
const PAUSE_MS: u64 = 120_000;

fn bodies(got: &[RawEnvelope]) -> Vec<Vec<u8>> {
    got.iter()
        .map(|raw| raw.decode_unverified().unwrap().body)
        .collect()
}

async fn send(from: &mut RawDevice, to: Address, body: &[u8]) {
    let envelope = from.envelope_to(to, body).sign(&from.device);
    let Ok(Response::Sent { outcomes }) = from.send(vec![envelope]).await else {
        panic!("send refused");
    };
    assert_eq!(outcomes.into_vec(), vec![SendOutcome::Accepted]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_connects_again_gets_its_mail_without_waiting_out_the_pause() {
    let mut network = Network::start(2, |config| {
        config.federation.forward_retry_min_ms = PAUSE_MS;
        config.federation.forward_retry_max_ms = PAUSE_MS;
    })
    .await
    .unwrap();
    let a = network.relay(0).unwrap().tcp_dial_addr().unwrap();
    let b = network.relay(1).unwrap().tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&a).await;
    let mut bob = RawDevice::registered(&b).await;
    send(&mut alice, bob.address(), b"before").await;
    assert_eq!(take(&mut bob, 1, Duration::from_secs(30)).await.len(), 1);

    // Bob's relay goes down; a forward to it fails and the link backs off for a minute or more.
    let (to, account, device) = (bob.address(), bob.account.clone(), bob.device.clone());
    drop(bob);
    network.stop(1).await.unwrap();
    send(&mut alice, to, b"during").await;
    let relay_a = network.relay(0).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while relay_a.metrics().forward_failures() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the forward never failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // It comes back (and dials the first relay, its bootstrap): the envelope follows at once.
    network.restart(1).await.unwrap();
    let mut bob = RawDevice::connect_as(&b, account, device).await;
    bob.register().await;
    // (The first envelope may come again: its ack may not have been taken before the stop.)
    let got = take_until(&mut bob, Duration::from_secs(20), |got| {
        bodies(got).contains(&b"during".to_vec())
    })
    .await;
    assert!(
        bodies(&got)
            .iter()
            .all(|body| body == b"during" || body == b"before")
    );
    network.shutdown().await;
}
