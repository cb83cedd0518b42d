//! Federation lockout: a stranger holding many connections and idle or half-sent streams to
//! a relay must not stop honest relays from delivering to it, and devices that never
//! register do not hold their streams forever.

use std::time::Duration;

use crate::common::{RawDevice, StreamOpener, metric, start_relays_tweaked};
use futures::{AsyncReadExt, AsyncWriteExt};
use tidings_protocol::federation::FEDERATION_PROTOCOL;
use tidings_relay::RelayConfig;

/// Short timeouts so the test does not wait long for the relay to close what it must.
fn quick_timeouts(config: &mut RelayConfig) {
    config.network.stream_idle_secs = 2;
    config.network.frame_timeout_secs = 2;
}

/// Reads from a stream until the relay closes it (or it fails); panics if it stays open
/// for longer than any timeout of the test relays.
async fn closed_by_relay(stream: &mut libp2p::Stream) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte)).await;
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("the relay wrote to a stream that sent no request"),
        Err(_) => panic!("the relay kept an idle or half-sent stream open"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_holding_connections_and_idle_streams_does_not_stop_federation() {
    let relays = start_relays_tweaked(2, quick_timeouts).await;
    let (a, b) = (&relays[0].relay, &relays[1].relay);
    let b_address = b.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&a.tcp_dial_addr().unwrap()).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&b_address).await;
    bob.register().await;

    // The attack: 20 connections from one stranger, 60 federation streams on each, most
    // of them silent, some with a frame started and never finished (slowloris).
    let stranger = libp2p::identity::Keypair::generate_ed25519();
    let mut connections = Vec::new();
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut opener = StreamOpener::dial(stranger.clone(), &b_address);
        for index in 0..60 {
            let Ok(Ok(mut stream)) =
                tokio::time::timeout(Duration::from_secs(5), opener.open(FEDERATION_PROTOCOL))
                    .await
            else {
                break;
            };
            if index % 4 == 0 {
                // A length prefix announcing 100 bytes, then one byte of them.
                let _ = stream.write_all(&[0, 0, 0, 100, 0xa1]).await;
                let _ = stream.flush().await;
            }
            held.push(stream);
        }
        connections.push(opener);
    }
    // A few more strangers, one connection each, filling what they can.
    for _ in 0..4 {
        let mut opener =
            StreamOpener::dial(libp2p::identity::Keypair::generate_ed25519(), &b_address);
        for _ in 0..60 {
            match tokio::time::timeout(Duration::from_secs(5), opener.open(FEDERATION_PROTOCOL))
                .await
            {
                Ok(Ok(stream)) => held.push(stream),
                _ => break,
            }
        }
        connections.push(opener);
    }

    // Alice on relay A writes to Bob on relay B while the stranger holds what it got.
    let envelope = alice
        .envelope_to(bob.address(), b"through the siege")
        .sign(&alice.device);
    let sent = alice.send(vec![envelope.clone()]).await;
    assert!(sent.is_ok(), "{sent:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut bob_got = Vec::new();
    while bob_got.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay B never got Alice's message while a stranger held streams"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut reader =
            RawDevice::connect_as(&b_address, bob.account.clone(), bob.device.clone()).await;
        bob_got = reader.drain().await;
    }
    assert_eq!(bob_got, vec![envelope]);

    // Every stream the stranger still holds is closed by the relay: the silent ones after
    // the idle timeout, the half-sent frames after the frame timeout.
    for stream in held.iter_mut().take(40) {
        closed_by_relay(stream).await;
    }
    let text = b.metrics().render();
    let refused = metric(&text, "tidings_streams_refused_total", &[]).unwrap_or(0.0);
    let timeouts = metric(&text, "tidings_stream_timeouts_total", &[]).unwrap_or(0.0);
    assert!(refused > 0.0, "no refused stream counted:\n{text}");
    let refused_connections =
        metric(&text, "tidings_connections_refused_total", &[]).unwrap_or(0.0);
    assert!(
        refused_connections > 0.0,
        "no refused connection counted:\n{text}"
    );
    assert!(timeouts > 0.0, "no stream timeout counted:\n{text}");
    for opener in connections {
        opener.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_registers_loses_its_stream_and_a_registered_one_keeps_it() {
    // Long enough that registering right after connecting never races it, even on a busy
    // machine (the other test of this file floods a relay meanwhile).
    let relays = start_relays_tweaked(1, |config| {
        config.network.stream_idle_secs = 6;
        config.network.frame_timeout_secs = 6;
    })
    .await;
    let address = relays[0].relay.tcp_dial_addr().unwrap();
    let mut registered = RawDevice::connect(&address).await;
    registered.register().await;
    let mut idle = RawDevice::connect(&address).await;

    // The unregistered device says nothing: the relay closes its stream.
    assert!(
        idle.read().await.is_none(),
        "an unregistered idle stream stayed open"
    );
    let text = relays[0].relay.metrics().render();
    assert!(
        metric(&text, "tidings_stream_timeouts_total", &["Client", "Idle"]).unwrap_or(0.0) >= 1.0,
        "{text}"
    );

    // The registered one, just as silent meanwhile, still answers.
    let answer = registered
        .request(tidings_protocol::client::Request::Subscribe)
        .await;
    assert!(answer.is_ok(), "{answer:?}");
}
