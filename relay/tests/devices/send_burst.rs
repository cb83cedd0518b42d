//! A burst of `Send` requests written at once is checked and stored together: every request
//! gets its own answer, in order, and the burst takes a few commits, not one per request.

use tidings_protocol::{
    BoundedVec,
    client::{ClientFrame, RelayFrame, Request, Response, SendOutcome},
    framing,
};

use crate::common::{RawDevice, http_get, metric, start_tweaked};

/// Requests in the burst, one envelope each.
const BURST: u64 = 50;

/// Durable commits the relay made so far.
async fn commits(metrics_at: std::net::SocketAddr) -> f64 {
    let (_, text) = http_get(metrics_at, "/metrics").await;
    metric(&text, "tidings_store_commit_seconds_count", &[]).unwrap()
}

#[tokio::test]
async fn a_burst_of_sends_is_answered_in_order_and_rides_a_few_commits() {
    let relay = start_tweaked(
        |config| {
            config.metrics_listen = Some("127.0.0.1:0".into());
            config.limits.user_envelopes_per_sec = 1_000_000;
            config.limits.user_envelopes_burst = 1_000_000;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let metrics_at = relay.relay.metrics_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;

    let mut burst = Vec::new();
    let mut sent = Vec::new();
    for k in 0..BURST {
        let envelope = alice
            .envelope_to(bob.address(), format!("{k}").as_bytes())
            .sign(&alice.device);
        sent.push(envelope.clone());
        let frame = ClientFrame::Request {
            id: 1_000 + k,
            body: Request::Send {
                envelopes: BoundedVec::new(vec![envelope]).unwrap(),
            },
        };
        framing::encode_frame(&frame, &mut burst);
    }
    let before = commits(metrics_at).await;
    alice.send_bytes(&burst).await;
    for k in 0..BURST {
        match alice.read().await {
            Some(RelayFrame::Response {
                id,
                body: Ok(Response::Sent { outcomes }),
            }) => {
                assert_eq!(id, 1_000 + k, "answers come in request order");
                assert_eq!(outcomes.into_vec(), [SendOutcome::Accepted]);
            }
            other => panic!("expected the answer to request {k}, got {other:?}"),
        }
    }
    let taken = commits(metrics_at).await - before;
    assert!(
        (1.0..=5.0).contains(&taken),
        "{taken} commits for a burst of {BURST} sends"
    );
    assert_eq!(bob.drain().await, sent);
}
