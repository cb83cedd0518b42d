//! The outbox to another relay: several senders' batches travel at once, and each sender's
//! envelopes still arrive in the order they were sent.

use std::time::Duration;

use tidings_protocol::{
    MailboxItem, RawEnvelope, UserId,
    client::{ClientFrame, RelayFrame, Response, SendOutcome},
};

use crate::common::{RawDevice, start_relays};

/// Senders on one relay, each its own user (so their entries spread over the lanes).
const SENDERS: usize = 8;
/// Envelopes each sender sends, in requests of [`PER_REQUEST`].
const PER_SENDER: usize = 60;
const PER_REQUEST: usize = 10;

/// Reads `device`'s mailbox until `want` envelopes came (acking them), within `within`.
pub(crate) async fn take(
    device: &mut RawDevice,
    want: usize,
    within: Duration,
) -> Vec<RawEnvelope> {
    take_until(device, within, |got| got.len() >= want).await
}

/// Reads `device`'s mailbox (acking what comes) until what came is `enough`, within `within`.
pub(crate) async fn take_until(
    device: &mut RawDevice,
    within: Duration,
    enough: impl Fn(&[RawEnvelope]) -> bool,
) -> Vec<RawEnvelope> {
    let mut got = device.drain().await;
    let deadline = tokio::time::Instant::now() + within;
    while !enough(&got) {
        let frame = tokio::time::timeout_at(deadline, device.read())
            .await
            .unwrap_or_else(|_| panic!("not all arrived, only {} envelopes", got.len()));
        let Some(RelayFrame::Deliver { items }) = frame else {
            assert!(frame.is_some(), "stream closed");
            continue;
        };
        let mut last = 0;
        for delivery in items.into_vec() {
            last = delivery.seq;
            if let MailboxItem::Envelope(raw) = delivery.item {
                got.push(raw);
            }
        }
        device.send_frame(&ClientFrame::Ack { up_to: last }).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_senders_envelopes_reach_another_relay_in_order_while_senders_share_the_link() {
    let relays = start_relays(2).await;
    let a = relays[0].relay.tcp_dial_addr().unwrap();
    let b = relays[1].relay.tcp_dial_addr().unwrap();
    let mut receivers = vec![
        RawDevice::registered(&b).await,
        RawDevice::registered(&b).await,
    ];
    let targets: Vec<_> = receivers.iter().map(RawDevice::address).collect();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(RawDevice::registered(&a).await);
    }

    let sending = senders.into_iter().map(|mut sender| {
        let targets = targets.clone();
        tokio::spawn(async move {
            for start in (0..PER_SENDER).step_by(PER_REQUEST) {
                let batch = (start..start + PER_REQUEST)
                    .map(|n| {
                        let to = targets[n % targets.len()];
                        sender
                            .envelope_to(to, n.to_string().as_bytes())
                            .sign(&sender.device)
                    })
                    .collect();
                let Ok(Response::Sent { outcomes }) = sender.send(batch).await else {
                    panic!("send refused");
                };
                assert!(outcomes.iter().all(|o| *o == SendOutcome::Accepted));
            }
        })
    });
    for task in sending.collect::<Vec<_>>() {
        task.await.unwrap();
    }

    let per_receiver = SENDERS * PER_SENDER / receivers.len();
    for receiver in &mut receivers {
        let got = take(receiver, per_receiver, Duration::from_secs(60)).await;
        assert_eq!(got.len(), per_receiver, "nothing more, nothing twice");
        // Per sender, the numbers arrive rising.
        let mut last: std::collections::HashMap<UserId, usize> = Default::default();
        for raw in got {
            let envelope = raw.decode_unverified().unwrap();
            let n: usize = std::str::from_utf8(&envelope.body)
                .unwrap()
                .parse()
                .unwrap();
            let previous = last.insert(envelope.sender.user, n);
            assert!(
                previous.is_none_or(|previous| previous < n),
                "{n} after {previous:?} from one sender"
            );
        }
        assert_eq!(last.len(), SENDERS);
    }
}
