//! Hostile relays: garbage frames, forged and replayed envelopes, forged and stale home
//! records in a handoff, floods; and the metrics that count what a relay accepts, delivers,
//! forwards and refuses.

use std::time::Duration;

use crate::common::{
    self, RawDevice, RawRelayPeer, Stranger, http_get, metric, start_relay, start_tweaked,
};
use tidings_protocol::{
    BoundedVec, ErrorCode, HomeRecord, RawEnvelope,
    client::SendOutcome,
    federation::{FederationFrame, FederationRequest},
    framing,
    limits::MAX_FRAME_BYTES,
    now_ms,
};
use tidings_relay::{RegistrationPolicy, metrics::DeliveryStage, store::fault::FaultSwitch};

fn code(outcome: &SendOutcome) -> Option<ErrorCode> {
    match outcome {
        SendOutcome::Rejected(answer) => Some(answer.code),
        _ => None,
    }
}

#[tokio::test]
async fn a_relay_sending_garbage_loses_only_its_own_stream() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;

    // Undecodable CBOR: the stream is closed.
    let mut garbage = RawRelayPeer::connect(&address).await;
    let mut frame = 5u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0xff, 0x00, 0x13, 0x37, 0x99]);
    garbage.send_bytes(&frame).await;
    assert!(
        garbage.read().await.is_none(),
        "garbage must close the stream"
    );

    // A response where a request belongs: closed too.
    let mut backwards = RawRelayPeer::connect(&address).await;
    let mut frame = Vec::new();
    framing::encode_frame(
        &FederationFrame::Response {
            id: 1,
            body: Err(tidings_protocol::ErrorAnswer::new(ErrorCode::Unknown, "?")),
        },
        &mut frame,
    );
    backwards.send_bytes(&frame).await;
    assert!(backwards.read().await.is_none());

    // A length prefix over the limit: closed before any body is read.
    let mut huge = RawRelayPeer::connect(&address).await;
    huge.send_bytes(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes())
        .await;
    assert!(huge.read().await.is_none());

    // A request of a kind this relay does not know, with an id: an error answer by id, and
    // the stream stays usable.
    #[derive(serde::Serialize)]
    enum Newer {
        #[serde(rename = "q")]
        Request {
            #[serde(rename = "i")]
            id: u64,
            #[serde(rename = "b")]
            body: &'static str,
        },
    }
    let mut newer = RawRelayPeer::connect(&address).await;
    let mut frame = Vec::new();
    framing::encode_frame(
        &Newer::Request {
            id: 9,
            body: "teleport",
        },
        &mut frame,
    );
    newer.send_bytes(&frame).await;
    match newer.read().await {
        Some(FederationFrame::Response {
            id: 9,
            body: Err(answer),
        }) => {
            assert_eq!(answer.code, ErrorCode::Malformed)
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
    let stranger = Stranger::new();
    newer.vouch_for(&stranger).await;
    let first = stranger.envelope_to(bob.address(), b"after garbage");
    let outcomes = newer
        .forward(
            vec![Stranger::item(first.clone(), bob.address())],
            &[&stranger],
        )
        .await;
    assert_eq!(outcomes, [SendOutcome::Accepted]);

    // A truncated frame, then the peer goes away: nothing breaks for anyone else.
    let mut truncated = RawRelayPeer::connect(&address).await;
    let mut frame = 1000u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0xa1; 10]);
    truncated.send_bytes(&frame).await;
    drop(truncated);

    let mut fine = RawRelayPeer::connect(&address).await;
    let other = Stranger::new();
    fine.vouch_for(&other).await;
    let second = other.envelope_to(bob.address(), b"still served");
    let outcomes = fine
        .forward(
            vec![Stranger::item(second.clone(), bob.address())],
            &[&other],
        )
        .await;
    assert_eq!(outcomes, [SendOutcome::Accepted]);
    assert_eq!(bob.drain().await, vec![first, second]);
}

#[tokio::test]
async fn forged_and_replayed_envelopes_from_a_relay_are_refused_or_stored_once() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let to = bob.address();
    let stranger = Stranger::new();
    let mut peer = RawRelayPeer::connect(&address).await;
    peer.vouch_for(&stranger).await;

    let good = stranger.envelope_to(to, b"hello");
    let mut forged = stranger.envelope_to(to, b"forged").into_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let forged = RawEnvelope::from_bytes(forged);
    // Signed by a key that is not the sender device's.
    let mut impostor = stranger
        .envelope_to(to, b"impostor")
        .decode_unverified()
        .unwrap();
    impostor.sender = Stranger::new().address();
    let impostor = impostor.sign(&stranger.device);
    // Addressed to bob, but handed over for someone else.
    let mut misrouted = Stranger::item(stranger.envelope_to(to, b"x"), to);
    misrouted.recipients = BoundedVec::new(vec![Stranger::new().address().user]).unwrap();
    let outcomes = peer
        .forward(
            vec![
                Stranger::item(good.clone(), to),
                Stranger::item(forged, to),
                Stranger::item(impostor, to),
                misrouted,
            ],
            &[&stranger],
        )
        .await;
    assert_eq!(outcomes[0], SendOutcome::Accepted);
    assert_eq!(code(&outcomes[1]), Some(ErrorCode::BadSignature));
    assert_eq!(code(&outcomes[2]), Some(ErrorCode::BadSignature));
    assert_eq!(code(&outcomes[3]), Some(ErrorCode::Malformed));

    // The same envelope again: a duplicate, stored once. Another relay is not the sender's
    // home: it may not hand it over at all.
    let again = peer
        .forward(vec![Stranger::item(good.clone(), to)], &[&stranger])
        .await;
    assert_eq!(again, [SendOutcome::Duplicate]);
    let mut other = RawRelayPeer::connect(&address).await;
    let again = other
        .forward(vec![Stranger::item(good.clone(), to)], &[&stranger])
        .await;
    assert_eq!(code(&again[0]), Some(ErrorCode::WrongOrigin));
    // The same id with other content: refused.
    let mut reused = good.decode_unverified().unwrap();
    reused.body = b"other".to_vec();
    let reused = reused.sign(&stranger.device);
    let outcomes = peer
        .forward(vec![Stranger::item(reused, to)], &[&stranger])
        .await;
    assert_eq!(code(&outcomes[0]), Some(ErrorCode::IdReused));

    assert_eq!(bob.drain().await, vec![good]);
    let metrics = relay.relay.metrics();
    assert_eq!(metrics.envelopes_rejected(ErrorCode::BadSignature), 2);
    assert_eq!(metrics.envelopes_rejected(ErrorCode::IdReused), 1);
    assert_eq!(metrics.envelopes_duplicate(), 1);
    assert_eq!(metrics.envelopes_rejected(ErrorCode::WrongOrigin), 1);
}

#[tokio::test]
async fn a_handoff_with_a_forged_or_stale_home_record_is_refused() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let here = relay.relay.peer_id().to_string();
    let mut peer = RawRelayPeer::connect(&address).await;
    let account = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let expires = now_ms() + 3_600_000;
    let record = |relay: String, seq: u64| {
        HomeRecord::sign(&account, relay, BoundedVec::default(), seq, expires)
    };
    let handoff = |home: HomeRecord, previous: HomeRecord| FederationRequest::Handoff {
        home: Box::new(home),
        previous: Box::new(previous),
        items: BoundedVec::default(),
    };

    // Forged: the sequence number was raised after signing.
    let mut forged = record(here.clone(), 5);
    forged.seq = 50;
    let answer = peer
        .request(handoff(forged, record(peer.peer_id.to_string(), 4)))
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadHomeRecord);
    // Stale: the "previous" record is newer than the one naming this relay.
    let answer = peer
        .request(handoff(
            record(here.clone(), 5),
            record(peer.peer_id.to_string(), 9),
        ))
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadHomeRecord);
    // The previous record names another relay than the sender.
    let answer = peer
        .request(handoff(
            record(here.clone(), 5),
            record(relay.relay.peer_id().to_string(), 4),
        ))
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadHomeRecord);
}

#[tokio::test]
async fn a_flooding_relay_is_rate_limited_and_nothing_accepted_is_lost() {
    let relay = start_tweaked(
        |config| {
            config.limits.relay_envelopes_per_sec = 50;
            config.limits.relay_envelopes_burst = 1024;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let to = bob.address();
    let stranger = Stranger::new();
    let sent: Vec<RawEnvelope> = (0..1280)
        .map(|n| stranger.envelope_to(to, format!("flood {n}").as_bytes()))
        .collect();

    let mut flood = RawRelayPeer::connect(&address).await;
    flood.vouch_for(&stranger).await;
    let mut accepted = 0;
    let mut limited = 0;
    for chunk in sent.chunks(256) {
        let items = chunk.iter().map(|raw| Stranger::item(raw.clone(), to));
        for outcome in flood.forward(items.collect(), &[&stranger]).await {
            match code(&outcome) {
                None if limited == 0 => accepted += 1,
                Some(ErrorCode::RateLimited) => limited += 1,
                other => panic!("accepted after a refusal, or refused otherwise: {other:?}"),
            }
        }
    }
    assert!(
        accepted >= 1024 && limited > 0,
        "{accepted} accepted, {limited} refused"
    );
    assert_eq!(
        relay
            .relay
            .metrics()
            .envelopes_rejected(ErrorCode::RateLimited),
        limited as u64
    );

    // Another relay has its own allowance.
    let mut other = RawRelayPeer::connect(&address).await;
    let their_user = Stranger::new();
    other.vouch_for(&their_user).await;
    let theirs = their_user.envelope_to(to, b"from another relay");
    let outcomes = other
        .forward(vec![Stranger::item(theirs.clone(), to)], &[&their_user])
        .await;
    assert_eq!(outcomes, [SendOutcome::Accepted]);

    // The flooding relay retries what was refused (as its outbox does) until all is in.
    let mut next = accepted;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while next < sent.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retries never got through"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let end = (next + 256).min(sent.len());
        let items = sent[next..end]
            .iter()
            .map(|raw| Stranger::item(raw.clone(), to));
        next += flood
            .forward(items.collect(), &[&stranger])
            .await
            .iter()
            .take_while(|outcome| **outcome == SendOutcome::Accepted)
            .count();
    }
    let got = bob.drain().await;
    let flood_part: Vec<RawEnvelope> = got.iter().filter(|raw| **raw != theirs).cloned().collect();
    assert_eq!(
        flood_part, sent,
        "every flood envelope exactly once, in order"
    );
    assert!(got.contains(&theirs));
}

async fn scrape(relay: &tidings_relay::RunningRelay) -> String {
    let (status, body) = http_get(relay.metrics_addr().unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    body
}

#[tokio::test]
async fn metrics_count_what_the_relay_accepts_delivers_forwards_and_refuses() {
    let switch = FaultSwitch::default();
    let with_metrics = |config: &mut tidings_relay::RelayConfig| {
        config.metrics_listen = Some("127.0.0.1:0".into());
    };
    let one = start_tweaked(with_metrics, Some(switch.clone())).await;
    let bootstrap = one.relay.tcp_dial_addr().unwrap().to_string();
    let two = start_tweaked(
        |config| {
            with_metrics(config);
            config.bootstrap = vec![bootstrap];
        },
        None,
    )
    .await;
    for relay in [&one, &two] {
        while relay.relay.routing_peers().await < 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (status, body) = http_get(one.relay.metrics_addr().unwrap(), "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let address = one.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let mut carol = RawDevice::connect(&two.relay.tcp_dial_addr().unwrap()).await;
    carol.register().await;

    let to_bob = alice.envelope_to(bob.address(), b"hi").sign(&alice.device);
    let to_carol = alice
        .envelope_to(carol.address(), b"hi")
        .sign(&alice.device);
    // Nobody's home is known for a stranger: it waits in the outbox.
    let to_nobody = alice
        .envelope_to(Stranger::new().address(), b"hi")
        .sign(&alice.device);
    let mut forged = alice
        .envelope_to(bob.address(), b"x")
        .sign(&alice.device)
        .into_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    alice
        .send(vec![
            to_bob,
            to_carol,
            to_nobody,
            RawEnvelope::from_bytes(forged),
        ])
        .await
        .unwrap();
    assert_eq!(bob.drain().await.len(), 1);

    // Wait until carol's relay took its envelope and bob's ack is committed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&one.relay).await;
        let forwarded = metric(&text, "tidings_envelopes_forwarded_total", &[]);
        let acked = metric(&text, "tidings_mailbox_envelopes", &[]);
        if forwarded == Some(1.0) && acked == Some(0.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not forwarded:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let value = |name: &str, labels: &[&str]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        value("tidings_envelopes_stored_total", &["from=\"Client\""]),
        3.0
    );
    let rejected = ["reason=\"bad_signature\"", "from=\"Client\""];
    assert_eq!(value("tidings_envelopes_rejected_total", &rejected), 1.0);
    assert_eq!(
        value("tidings_envelopes_delivered_total", &["stage=\"Pushed\""]),
        1.0
    );
    assert_eq!(
        value("tidings_envelopes_delivered_total", &["stage=\"Acked\""]),
        1.0
    );
    assert_eq!(value("tidings_outbox_envelopes", &[]), 1.0);
    assert!(value("tidings_store_commit_seconds_count", &[]) >= 3.0);
    assert!(value("tidings_connections", &[]) >= 3.0);
    assert_eq!(value("tidings_sessions", &[]), 2.0);
    assert!(value("tidings_home_records_total", &["verdict=\"stored\""]) >= 2.0);
    assert!(value("libp2p_swarm_connections_established_total", &[]) >= 3.0);
    assert!(text.contains("libp2p_kad_"), "{text}");
    let text = scrape(&two.relay).await;
    let stored = ["from=\"Federation\"", "kind=\"Message\""];
    assert_eq!(
        metric(&text, "tidings_envelopes_stored_total", &stored),
        Some(1.0)
    );
    assert_eq!(one.relay.metrics().delivered(DeliveryStage::Acked), 1);

    // A failing disk: the send is refused (transient), /healthz says so until a commit
    // succeeds again.
    switch.fail();
    let again = alice
        .envelope_to(bob.address(), b"again")
        .sign(&alice.device);
    let outcomes = match alice.send(vec![again.clone()]).await {
        Ok(tidings_protocol::client::Response::Sent { outcomes }) => outcomes.into_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(code(&outcomes[0]), Some(ErrorCode::Storage));
    let (status, body) = http_get(one.relay.metrics_addr().unwrap(), "/healthz").await;
    assert_eq!(status, 503, "{body}");
    let text = scrape(&one.relay).await;
    assert!(metric(&text, "tidings_store_commit_failures_total", &[]) >= Some(1.0));
    assert_eq!(
        metric(
            &text,
            "tidings_envelopes_rejected_total",
            &["reason=\"storage\""]
        ),
        Some(1.0)
    );
    // redb takes no write after a failed commit until it is opened again: the relay stays
    // unhealthy after the disk heals, until it restarts; it loses nothing it accepted.
    switch.heal();
    let (status, _) = http_get(one.relay.metrics_addr().unwrap(), "/healthz").await;
    assert_eq!(status, 503);
    let common::TestRelay { dir, relay } = one;
    relay.shutdown().await;
    let relay = common::restart_tweaked(dir.path(), with_metrics).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice =
        RawDevice::connect_as(&address, alice.account.clone(), alice.device.clone()).await;
    let outcomes = alice.send(vec![again]).await;
    assert!(
        matches!(
            outcomes,
            Ok(tidings_protocol::client::Response::Sent { ref outcomes })
                if outcomes.as_slice() == [SendOutcome::Accepted]
        ),
        "{outcomes:?}"
    );
    let (status, body) = http_get(relay.metrics_addr().unwrap(), "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let mut bob = RawDevice::connect_as(&address, bob.account.clone(), bob.device.clone()).await;
    assert_eq!(
        bob.drain().await.len(),
        1,
        "the envelope accepted after the restart"
    );
}
