//! Graceful shutdown in the middle of a burst loses nothing that was accepted.

use std::collections::HashSet;

use crate::common::{self, RawDevice, start_relay};
use tidings_protocol::{
    BoundedVec, EnvelopeId,
    client::{ClientFrame, RelayFrame, Request, Response, SendOutcome},
};
use tidings_relay::RegistrationPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_envelope_survives_a_shutdown_mid_burst() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let (bob_account, bob_device) = (bob.account.clone(), bob.device.clone());
    let bob_address = bob.address();
    drop(bob);

    // 40 requests of 25 envelopes, written without waiting for answers.
    let mut ids_by_request = Vec::new();
    for request in 0..40u64 {
        let envelopes: Vec<_> = (0..25)
            .map(|_| {
                alice
                    .envelope_to(bob_address, b"payload")
                    .sign(&alice.device)
            })
            .collect();
        ids_by_request.push(
            envelopes
                .iter()
                .map(|raw| raw.decode_unverified().unwrap().id)
                .collect::<Vec<EnvelopeId>>(),
        );
        alice
            .send_frame(&ClientFrame::Request {
                id: 1000 + request,
                body: Request::Send {
                    envelopes: BoundedVec::new(envelopes).unwrap(),
                },
            })
            .await;
    }
    let common::TestRelay { dir, relay } = relay;
    let stopping = tokio::spawn(relay.shutdown());

    let mut accepted: HashSet<EnvelopeId> = HashSet::new();
    while let Some(frame) = alice.read().await {
        if let RelayFrame::Response {
            id,
            body: Ok(Response::Sent { outcomes }),
        } = frame
        {
            let ids = &ids_by_request[(id - 1000) as usize];
            for (envelope_id, outcome) in ids.iter().zip(outcomes.iter()) {
                if *outcome == SendOutcome::Accepted {
                    accepted.insert(*envelope_id);
                }
            }
        }
    }
    stopping.await.unwrap();
    assert!(
        !accepted.is_empty(),
        "some requests should have been answered before the stop"
    );
    eprintln!("accepted before the stop: {} of 1000", accepted.len());

    // Restart on the same data dir; Bob drains his mailbox.
    let relay = common::restart_tweaked(dir.path(), |_| {}).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect_as(&address, bob_account, bob_device).await;
    assert!(matches!(
        bob.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));
    let mut stored: HashSet<EnvelopeId> = HashSet::new();
    loop {
        match bob.read().await {
            Some(RelayFrame::Deliver { items }) => {
                for item in items.iter() {
                    let tidings_protocol::MailboxItem::Envelope(raw) = &item.item else {
                        panic!("a bounce")
                    };
                    stored.insert(raw.decode_unverified().unwrap().id);
                }
            }
            Some(RelayFrame::CaughtUp { .. }) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let lost: Vec<_> = accepted.difference(&stored).collect();
    assert!(lost.is_empty(), "{} accepted envelopes lost", lost.len());
    relay.shutdown().await;
}
