//! Hostile input on the client protocol: every case gets a typed answer or a closed stream,
//! the relay keeps serving others, and nothing already stored is lost.

use crate::common::{self, RawDevice, start_relay};
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

/// A request larger than the relay verifies inline goes to the blocking pool: its answers
/// still come one per envelope, in order, and any id is taken (a client may choose its own).
#[tokio::test]
async fn a_large_request_is_verified_off_the_runtime_with_one_answer_per_envelope() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;
    let bob_address = bob.address();

    let ids = [[0u8; 16], [0xff; 16]]
        .into_iter()
        .map(tidings_protocol::EnvelopeId::from_bytes)
        .chain(std::iter::repeat_with(tidings_protocol::EnvelopeId::random).take(4))
        .chain(std::iter::repeat_with(tidings_protocol::EnvelopeId::new).take(14));
    let (mut batch, mut good) = (Vec::new(), Vec::new());
    for (index, id) in ids.enumerate() {
        let mut envelope = alice.envelope_to(bob_address, format!("{index}").as_bytes());
        envelope.id = id;
        let signed = envelope.sign(&alice.device);
        if index % 3 == 1 {
            let mut bytes = signed.into_bytes();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            batch.push(RawEnvelope::from_bytes(bytes));
        } else {
            good.push(signed.clone());
            batch.push(signed);
        }
    }
    assert!(batch.len() > 4, "more than the relay verifies inline");
    let answers = outcomes(alice.send(batch).await);
    assert_eq!(answers.len(), 20);
    for (index, answer) in answers.iter().enumerate() {
        if index % 3 == 1 {
            assert_eq!(
                rejected(answer),
                ErrorCode::BadSignature,
                "envelope {index}"
            );
        } else {
            assert_eq!(*answer, SendOutcome::Accepted, "envelope {index}");
        }
    }
    assert_eq!(mailbox(&mut bob).await, good);
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
        .request(Request::Register(Box::new(Register {
            cert,
            invite: None,
            list: None,
        })))
        .await;
    assert_eq!(answer.unwrap_err().code, ErrorCode::BadCertificate);
    let mut cert = mallory.cert();
    cert.issued_at_ms += 1;
    let answer = mallory
        .request(Request::Register(Box::new(Register {
            cert,
            invite: None,
            list: None,
        })))
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
            list: None,
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

#[tokio::test]
async fn a_user_over_the_rate_limit_is_told_so_and_loses_nothing() {
    let relay = common::start_tweaked(
        |config| {
            config.limits.user_envelopes_per_sec = 5;
            config.limits.user_envelopes_burst = 10;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::connect(&address).await;
    alice.register().await;
    let mut carol = RawDevice::connect(&address).await;
    carol.register().await;
    let mut bob = RawDevice::connect(&address).await;
    bob.register().await;

    let sent: Vec<RawEnvelope> = (0..25)
        .map(|n| {
            alice
                .envelope_to(bob.address(), format!("{n}").as_bytes())
                .sign(&alice.device)
        })
        .collect();
    let answers = outcomes(alice.send(sent.clone()).await);
    let accepted = answers
        .iter()
        .take_while(|outcome| **outcome == SendOutcome::Accepted)
        .count();
    assert_eq!(accepted, 10, "the burst passes: {answers:?}");
    for answer in &answers[accepted..] {
        assert_eq!(rejected(answer), ErrorCode::RateLimited);
    }
    assert!(ErrorCode::RateLimited.is_transient());

    // Another user has an allowance of her own.
    let from_carol = carol.envelope_to(bob.address(), b"hi").sign(&carol.device);
    assert_eq!(
        outcomes(carol.send(vec![from_carol.clone()]).await),
        [SendOutcome::Accepted]
    );

    // Alice retries what was refused, as her client does, until it is all in.
    let mut next = accepted;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while next < sent.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retries never got through"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        next += outcomes(alice.send(sent[next..].to_vec()).await)
            .iter()
            .take_while(|outcome| **outcome == SendOutcome::Accepted)
            .count();
    }
    let got = mailbox(&mut bob).await;
    let from_alice: Vec<RawEnvelope> = got
        .iter()
        .filter(|raw| **raw != from_carol)
        .cloned()
        .collect();
    assert_eq!(from_alice, sent, "every envelope once, in the order sent");
    assert!(got.contains(&from_carol));
    assert!(
        relay
            .relay
            .metrics()
            .envelopes_rejected(ErrorCode::RateLimited)
            >= 15
    );
}

/// A relay as a child process, so its memory is measured apart from the test's.
struct ChildRelay {
    child: std::process::Child,
    addr: libp2p::Multiaddr,
    metrics: std::net::SocketAddr,
    _dir: tidings_relay::testing::RelayDir,
}

impl ChildRelay {
    fn start() -> Self {
        use std::io::BufRead;
        let dir = tidings_relay::testing::RelayDir::temp(|config| {
            config.metrics_listen = Some("127.0.0.1:0".into());
            // What many streams of one connection cost is measured here: the per-device cap
            // (tested in stream_limits.rs) would refuse most of them at once.
            config.network.client_streams_per_device = 64;
        })
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-relay"))
            .args(["run", "--print-addr", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let url = lines.next().unwrap().unwrap();
        let metrics = tidings_relay::testing::metrics_url_address(&url).unwrap();
        Self {
            child,
            addr,
            metrics,
            _dir: dir,
        }
    }

    /// Resident memory of the relay process, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    async fn sessions(&self) -> f64 {
        let (_, text) = common::http_get(self.metrics, "/metrics").await;
        common::metric(&text, "tidings_sessions", &[]).unwrap()
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes requests on `stream` and never reads an answer, until the relay stops taking them
/// (its answers fill the stream's window, so it stops reading) or `max` bytes went out.
async fn flood_without_reading(stream: libp2p::Stream, max: usize) -> usize {
    use futures::AsyncWriteExt;
    let mut chunk = Vec::new();
    for id in 0..64 {
        let body = Request::ClaimBundle {
            device: tidings_protocol::Address {
                user: tidings_protocol::UserId::from_bytes(rand::random()),
                device: tidings_protocol::DeviceId::from_bytes(rand::random()),
            },
        };
        tidings_protocol::framing::encode_frame(&ClientFrame::Request { id, body }, &mut chunk);
    }
    let mut stream = stream;
    let mut written = 0;
    while written < max {
        let write = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            stream.write_all(&chunk),
        );
        match write.await {
            Ok(Ok(())) => written += chunk.len(),
            _ => break,
        }
    }
    // Kept open (and unread) until the test ends.
    std::mem::forget(stream);
    written
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_read_or_never_finish_a_frame_keep_the_relay_bounded() {
    use futures::AsyncWriteExt;
    use tidings_protocol::client::CLIENT_PROTOCOL;
    // Below the relay's 64 streams per connection, leaving room for identify and ping.
    const CONNECTIONS: usize = 4;
    const STALLED: usize = 30;
    const FLOODING: usize = 10;
    let relay = ChildRelay::start();
    // Let it settle, then take the baseline.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = relay.rss();

    let mut openers = Vec::new();
    let mut stalled = Vec::new();
    let mut floods = Vec::new();
    for _ in 0..CONNECTIONS {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let mut opener = common::StreamOpener::dial(keypair, &relay.addr);
        for _ in 0..STALLED {
            // A frame announcing the largest size, of which a few bytes ever come.
            let mut stream = opener.open(CLIENT_PROTOCOL).await.unwrap();
            let mut bytes = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0xa1; 64]);
            // A stream the relay dropped at once (see below) fails here: no matter.
            if stream.write_all(&bytes).await.is_ok() {
                let _ = stream.flush().await;
                stalled.push(stream);
            }
        }
        for _ in 0..FLOODING {
            let stream = opener.open(CLIENT_PROTOCOL).await.unwrap();
            floods.push(tokio::spawn(flood_without_reading(stream, 4 << 20)));
        }
        openers.push(opener);
    }
    let mut flooded = 0;
    for flood in floods {
        flooded += flood.await.unwrap();
    }
    // libp2p-stream drops an inbound stream when the acceptor is busy (it hands them over
    // one at a time), so a few of a burst may be missing; never more than were opened.
    let served = relay.sessions().await;
    let streams = (CONNECTIONS * (STALLED + FLOODING)) as f64;
    assert!(
        served <= streams && served > streams / 2.0,
        "{served} sessions"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let grown = relay.rss().saturating_sub(before);
    eprintln!(
        "{served} sessions ({} stalled mid-frame, {} wrote {flooded} bytes unread): \
         relay RSS +{} KiB",
        stalled.len(),
        CONNECTIONS * FLOODING,
        grown / 1024
    );
    // Stalled frames cost what arrived, not what they announce (that would be 120 MiB); the
    // unread streams cost at most their yamux window (256 KiB each, 10 MiB in all).
    assert!(grown < 48 << 20, "relay memory grew by {} MiB", grown >> 20);
    assert!(
        flooded < CONNECTIONS * FLOODING * (2 << 20),
        "the relay stopped reading"
    );

    // A connection opening more streams than the relay's cap (64) is closed altogether: its
    // first stream dies, and its sessions end. Streams the acceptor drops while busy do not
    // count towards the cap, so a loaded relay may need more than 64 - 40 openings.
    let mut greedy = openers.remove(0);
    for _ in 0..200 {
        let open = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            greedy.open(CLIENT_PROTOCOL),
        );
        let Ok(Ok(mut stream)) = open.await else {
            break;
        };
        let _ = stream.write_all(&[0]).await;
        std::mem::forget(stream);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while stalled[0].write_all(&[0xa1]).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the greedy connection stayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    while relay.sessions().await >= served {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the greedy connection's sessions stayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Meanwhile a well-behaved device is served as usual.
    let mut bob = RawDevice::connect(&relay.addr).await;
    bob.register().await;
    let note = bob
        .envelope_to(bob.address(), b"still here")
        .sign(&bob.device);
    assert_eq!(
        outcomes(bob.send(vec![note]).await),
        [SendOutcome::Accepted]
    );
    drop(stalled);
}
