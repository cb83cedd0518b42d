//! Hostile input on the client protocol: every case gets a typed answer or a closed stream,
//! the relay keeps serving others, and nothing already stored is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{RawDevice, start_relay};
use tidings_protocol::{
    ErrorCode, RawEnvelope,
    client::{ClientFrame, Register, RelayFrame, Request, Response, SendOutcome},
    codec,
    limits::{MAX_ENVELOPE_BYTES, MAX_FRAME_BYTES},
};
use tidings_relay::RegistrationPolicy;

fn outcomes(response: Result<Response, tidings_protocol::ErrorAnswer>) -> Vec<SendOutcome> {
    match response {
        Ok(Response::Sent { outcomes }) => outcomes.into_vec(),
        other => panic!("expected Sent, got {other:?}"),
    }
}

fn rejected(outcome: &SendOutcome) -> ErrorCode {
    match outcome {
        SendOutcome::Rejected(answer) => answer.code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Drains bob's mailbox: the envelopes pushed to him, in order.
async fn mailbox(device: &mut RawDevice) -> Vec<RawEnvelope> {
    assert!(matches!(
        device.request(Request::Subscribe).await,
        Ok(Response::Subscribed { .. })
    ));
    let mut got = Vec::new();
    loop {
        match device.read().await {
            Some(RelayFrame::Deliver { items }) => {
                got.extend(items.into_vec().into_iter().map(|d| match d.item {
                    tidings_protocol::MailboxItem::Envelope(raw) => raw,
                    other => panic!("unexpected {other:?}"),
                }))
            }
            Some(RelayFrame::CaughtUp { .. }) => return got,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_envelopes_get_typed_rejections_and_good_ones_still_arrive() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let bob_address = bob.address();

    let good = alice
        .envelope_to(bob_address, b"ciphertext")
        .sign(&alice.device);
    assert_eq!(
        outcomes(alice.send(vec![good.clone()]).await),
        [SendOutcome::Accepted]
    );

    // Oversized, bad signature, forged sender, malformed bytes: one batch, one typed answer each.
    let big = alice
        .envelope_to(bob_address, &vec![7; MAX_ENVELOPE_BYTES])
        .sign(&alice.device);
    let mut bad_sig = alice
        .envelope_to(bob_address, b"x")
        .sign(&alice.device)
        .into_bytes();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 1;
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut forged = alice.envelope_to(bob_address, b"x");
    forged.sender.device = tidings_protocol::DeviceId::from(&stranger.verifying_key());
    let forged = forged.sign(&stranger);
    let garbage = RawEnvelope::from_bytes(
        b"TDE1 this is not cbor at all, nor a signature........................".to_vec(),
    );
    let answers = outcomes(
        alice
            .send(vec![big, RawEnvelope::from_bytes(bad_sig), forged, garbage])
            .await,
    );
    assert_eq!(rejected(&answers[0]), ErrorCode::EnvelopeTooLarge);
    assert_eq!(rejected(&answers[1]), ErrorCode::BadSignature);
    assert_eq!(rejected(&answers[2]), ErrorCode::SenderMismatch);
    assert_eq!(rejected(&answers[3]), ErrorCode::Malformed);

    // A replay of the same bytes is answered Duplicate and not stored again; the same id
    // with other content is refused.
    assert_eq!(
        outcomes(alice.send(vec![good.clone()]).await),
        [SendOutcome::Duplicate]
    );
    let mut reused = good.decode_unverified().unwrap();
    reused.body = b"other content".to_vec();
    let reused = reused.sign(&alice.device);
    assert_eq!(
        rejected(&outcomes(alice.send(vec![reused]).await)[0]),
        ErrorCode::IdReused
    );

    // Bob finds exactly the one good envelope.
    assert_eq!(mailbox(&mut bob).await, vec![good]);
}

#[tokio::test]
async fn an_unregistered_device_may_only_register() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let mut mallory = RawDevice::connect(&address).await;
    let envelope = mallory
        .envelope_to(bob.address(), b"x")
        .sign(&mallory.device);
    let answer = mallory.send(vec![envelope]).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::NotRegistered);
    assert_eq!(
        mallory.request(Request::Subscribe).await.unwrap_err().code,
        ErrorCode::NotRegistered
    );
    // A certificate for another device, or with a bad signature, is refused.
    let mut cert = mallory.cert();
    cert.device = bob.address().device;
    let answer = mallory
        .request(Request::Register(Box::new(Register { cert, invite: None })))
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadCertificate);
    let mut cert = mallory.cert();
    cert.issued_at_ms += 1;
    let answer = mallory
        .request(Request::Register(Box::new(Register { cert, invite: None })))
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadCertificate);
    // Bob still works.
    assert!(mailbox(&mut bob).await.is_empty());
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_only_that_stream() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;

    // A well-framed request of a kind the relay does not know: an error answer, stream lives.
    let mut unknown = Vec::new();
    #[derive(serde::Serialize)]
    enum Future {
        #[serde(rename = "q")]
        Request {
            #[serde(rename = "i")]
            id: u64,
            #[serde(rename = "b")]
            body: &'static str,
        },
    }
    tidings_protocol::framing::encode_frame(
        &Future::Request {
            id: 77,
            body: "teleport",
        },
        &mut unknown,
    );
    let mut probe = RawDevice::connect(&address).await;
    probe.send_bytes(&unknown).await;
    match probe.read().await {
        Some(RelayFrame::Response {
            id: 77,
            body: Err(answer),
        }) => assert_eq!(answer.code, ErrorCode::Malformed),
        other => panic!("expected an error answer, got {other:?}"),
    }
    probe.register().await;

    // Garbage CBOR: a fatal answer, then the stream closes.
    let mut garbage = RawDevice::connect(&address).await;
    let mut frame = Vec::new();
    frame.extend_from_slice(&5u32.to_be_bytes());
    frame.extend_from_slice(&[0xff, 0x00, 0x13, 0x37, 0x99]);
    garbage.send_bytes(&frame).await;
    match garbage.read().await {
        Some(RelayFrame::Fatal(answer)) => assert_eq!(answer.code, ErrorCode::Malformed),
        other => panic!("expected a fatal answer, got {other:?}"),
    }
    assert!(garbage.read().await.is_none(), "stream must close");

    // A length prefix over the limit: refused before reading the body.
    let mut huge = RawDevice::connect(&address).await;
    huge.send_bytes(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes())
        .await;
    match huge.read().await {
        Some(RelayFrame::Fatal(answer)) => assert_eq!(answer.code, ErrorCode::FrameTooLarge),
        other => panic!("expected a fatal answer, got {other:?}"),
    }

    // A truncated frame followed by a close: nothing breaks for others.
    let mut truncated = RawDevice::connect(&address).await;
    let frame = codec::encode(&ClientFrame::Ack { up_to: 1 });
    let mut bytes = (frame.len() as u32 + 10).to_be_bytes().to_vec();
    bytes.extend_from_slice(&frame);
    truncated.send_bytes(&bytes).await;
    drop(truncated);

    assert!(mailbox(&mut bob).await.is_empty());
}

#[tokio::test]
async fn invite_policy_asks_for_a_valid_unused_code() {
    let relay = start_relay(RegistrationPolicy::Invite).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let invites = tidings_relay::invites::Invites::open(relay.dir.path()).unwrap();
    let code = invites.create(1, None).unwrap().code;

    let mut first = RawDevice::connect(&address).await;
    let register = |device: &RawDevice, invite: Option<String>| {
        Request::Register(Box::new(Register {
            cert: device.cert(),
            invite,
        }))
    };
    let answer = first.request(register(&first, None)).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::InviteRequired);
    let answer = first.request(register(&first, Some("wrong".into()))).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::InvalidInvite);
    let answer = first.request(register(&first, Some(code.clone()))).await;
    assert!(matches!(answer, Ok(Response::Registered { new: true, .. })));
    // Registering again is idempotent and needs no second use.
    let answer = first.request(register(&first, Some(code.clone()))).await;
    assert!(matches!(
        answer,
        Ok(Response::Registered { new: false, .. })
    ));

    let mut second = RawDevice::connect(&address).await;
    let answer = second.request(register(&second, Some(code))).await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::InvalidInvite);
}
