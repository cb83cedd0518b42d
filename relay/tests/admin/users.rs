//! `tidings-relay users suspend|resume|remove` over relay processes, for a sender on the
//! same relay and a sender on another relay.

use tidings_protocol::{
    Bounce, ErrorCode, MailboxItem,
    client::{ClientFrame, RelayFrame, Request, Response, SendOutcome},
};

use crate::{common::RawDevice, process::RelayProcess};

/// Sends one envelope from `from` to `to`: its id and what the relay answered.
async fn send_one(
    from: &mut RawDevice,
    to: tidings_protocol::Address,
    body: &[u8],
) -> (tidings_protocol::EnvelopeId, SendOutcome) {
    let envelope = from.envelope_to(to, body);
    let id = envelope.id;
    let raw = envelope.sign(&from.device);
    let Ok(Response::Sent { outcomes }) = from.send(vec![raw]).await else {
        panic!("send failed");
    };
    (id, outcomes.into_vec().remove(0))
}

fn refused_with(outcome: &SendOutcome, code: ErrorCode) -> bool {
    matches!(outcome, SendOutcome::Rejected(answer) if answer.code == code)
}

/// Reads frames until the relay ends the stream; the fatal error it gave, if any.
async fn fatal_of(device: &mut RawDevice) -> Option<ErrorCode> {
    let mut fatal = None;
    while let Some(frame) = device.read().await {
        if let RelayFrame::Fatal(answer) = frame {
            fatal = Some(answer.code);
        }
    }
    fatal
}

/// Reads a subscribed device's deliveries (acking them) until a bounce arrives.
async fn next_bounce(device: &mut RawDevice) -> Bounce {
    loop {
        match device.read().await {
            Some(RelayFrame::Deliver { items }) => {
                let mut last = 0;
                let mut bounce = None;
                for delivery in items.into_vec() {
                    last = delivery.seq;
                    if let MailboxItem::Bounce(found) = delivery.item {
                        bounce = Some(found);
                    }
                }
                device.send_frame(&ClientFrame::Ack { up_to: last }).await;
                if let Some(bounce) = bounce {
                    return bounce;
                }
            }
            Some(_) => {}
            None => panic!("stream closed while waiting for a bounce"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_and_remove_for_a_sender_on_the_same_relay() {
    let relay = RelayProcess::start(|_| {}).await;
    let mut alice = RawDevice::registered(&relay.addr).await;
    let mut bob = RawDevice::registered(&relay.addr).await;
    let (bob_account, bob_device) = (bob.account.clone(), bob.device.clone());
    let (alice_account, alice_device) = (alice.account.clone(), alice.device.clone());
    let bob_address = bob.address();
    let bob_id = bob_address.user.to_string();
    assert!(bob.drain().await.is_empty());
    let (before, outcome) = send_one(&mut alice, bob_address, b"before").await;
    assert_eq!(outcome, SendOutcome::Accepted);

    let said = relay.ok(&["users", "suspend", &bob_id]).await;
    assert!(
        said.contains("suspended") && said.contains("1 sessions ended"),
        "{said}"
    );
    assert_eq!(fatal_of(&mut bob).await, Some(ErrorCode::UserSuspended));
    let (_, outcome) = send_one(&mut alice, bob_address, b"during").await;
    assert!(
        refused_with(&outcome, ErrorCode::UserSuspended),
        "{outcome:?}"
    );
    let mut again =
        RawDevice::connect_as(&relay.addr, bob_account.clone(), bob_device.clone()).await;
    assert_eq!(fatal_of(&mut again).await, Some(ErrorCode::UserSuspended));
    let said = relay.ok(&["users", "suspend", &bob_id]).await;
    assert!(said.contains("already"), "{said}");
    let status = relay.json(&["status", "--json"]).await;
    assert_eq!(status["suspended_users"], 1);
    let shown = relay.json(&["users", "show", &bob_id, "--json"]).await;
    assert!(shown["summary"]["suspended_at_ms"].as_u64().is_some());

    // The suspension is stored: a restarted relay still refuses.
    drop(alice);
    let relay = RelayProcess::run(relay.stop().await).await;
    let mut alice = RawDevice::connect_as(&relay.addr, alice_account, alice_device).await;
    alice.register().await;
    let (_, outcome) = send_one(&mut alice, bob_address, b"still").await;
    assert!(
        refused_with(&outcome, ErrorCode::UserSuspended),
        "{outcome:?}"
    );

    let said = relay.ok(&["users", "resume", &bob_id]).await;
    assert!(said.contains("resumed"), "{said}");
    let (after, outcome) = send_one(&mut alice, bob_address, b"after").await;
    assert_eq!(outcome, SendOutcome::Accepted);
    let mut bob = RawDevice::connect_as(&relay.addr, bob_account.clone(), bob_device.clone()).await;
    bob.register().await;
    let got: Vec<_> = bob
        .drain()
        .await
        .iter()
        .map(|raw| raw.decode_unverified().unwrap().id)
        .collect();
    assert_eq!(got, vec![before, after]);
    let (_, outcome) = send_one(&mut alice, bob_address, b"unread").await;
    assert_eq!(outcome, SendOutcome::Accepted);

    let said = relay.ok(&["users", "remove", &bob_id]).await;
    assert!(said.contains("removed"), "{said}");
    assert_eq!(fatal_of(&mut bob).await, Some(ErrorCode::NotRegistered));
    // Queued for a home elsewhere, if one turns up; none does, so alice hears it bounced.
    let (gone, outcome) = send_one(&mut alice, bob_address, b"gone").await;
    assert_eq!(outcome, SendOutcome::Accepted);
    assert!(matches!(
        alice.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));
    let bounce = next_bounce(&mut alice).await;
    assert_eq!(bounce.id, gone);
    assert_eq!(bounce.reason.code, ErrorCode::UnknownRecipient);
    // Nothing of bob's is left; alice's ack of the bounce commits a moment after she sent it.
    let mut status = relay.json(&["status", "--json"]).await;
    for _ in 0..100 {
        if status["mailbox_entries"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status = relay.json(&["status", "--json"]).await;
    }
    assert_eq!(status["users"], 1);
    assert_eq!(status["devices"], 1);
    assert_eq!(status["mailbox_entries"], 0);
    assert_eq!(status["mailbox_bytes"], 0);
    let (ok, _, err) = relay.cli(&["users", "show", &bob_id]).await;
    assert!(!ok && err.contains("no user"), "{err}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_remove_reach_a_sender_on_another_relay() {
    let home = RelayProcess::start(|_| {}).await;
    let bootstrap = home.addr.to_string();
    let other = RelayProcess::start(move |config| config.bootstrap = vec![bootstrap]).await;
    let bob = RawDevice::registered(&home.addr).await;
    let bob_address = bob.address();
    let bob_id = bob_address.user.to_string();
    drop(bob);
    let mut carol = RawDevice::registered(&other.addr).await;

    // Delivery works before anything changes.
    let (_, outcome) = send_one(&mut carol, bob_address, b"hello").await;
    assert_eq!(outcome, SendOutcome::Accepted);
    let mut delivered = false;
    for _ in 0..300 {
        let shown = home.json(&["users", "show", &bob_id, "--json"]).await;
        if shown["summary"]["mailbox_entries"] == 1 {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(delivered, "the first envelope never reached bob's relay");
    assert!(matches!(
        carol.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));

    home.ok(&["users", "suspend", &bob_id]).await;
    let (refused, outcome) = send_one(&mut carol, bob_address, b"refused").await;
    assert_eq!(outcome, SendOutcome::Accepted, "carol's relay queues it");
    let bounce = next_bounce(&mut carol).await;
    assert_eq!(bounce.id, refused);
    assert_eq!(bounce.to, bob_address.user);
    assert_eq!(bounce.reason.code, ErrorCode::UserSuspended);

    home.ok(&["users", "remove", &bob_id]).await;
    let (gone, _) = send_one(&mut carol, bob_address, b"gone").await;
    let bounce = next_bounce(&mut carol).await;
    assert_eq!(bounce.id, gone);
    assert_eq!(bounce.reason.code, ErrorCode::UnknownRecipient);
    other.stop().await;
    home.stop().await;
}
