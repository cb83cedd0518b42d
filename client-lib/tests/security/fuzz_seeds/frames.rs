//! Seeds of envelopes and of client, relay and federation frames.

use super::*;

pub(super) fn envelopes(out: &Dir, f: &Fixture) {
    let t = "envelope";
    let direct = f.direct(1);
    out.put(t, "direct", direct.as_bytes());
    let change = f.genesis().encode();
    let group = f.envelope(2, Recipient::Group(f.group), Kind::GroupControl, &change);
    out.put(t, "group-control", group.as_bytes());
    out.put(t, "typing", f.typing().as_bytes());
    let other = f.envelope(3, Recipient::Direct(f.peer), Kind::Other, &[]);
    out.put(t, "other-kind-empty-body", other.as_bytes());
    let mut tampered = direct.clone().into_bytes();
    let at = tampered.len() - 70;
    tampered[at] ^= 1;
    out.put(t, "bad-signature", &tampered);
    out.put(
        t,
        "bad-magic",
        b"TDX1 not an envelope at all, but long enough for a signature",
    );
    out.put(t, "truncated", &direct.as_bytes()[..40]);
    // A small-order sender key and a signature that is the identity point and zero: the
    // unchecked batch equation holds for any message (regression seed).
    let weak = Envelope {
        id: EnvelopeId::from_bytes([4; 16]),
        sender: Address {
            user: f.me.user,
            device: DeviceId::from_bytes(identity_point()),
        },
        recipient: Recipient::Direct(f.peer),
        sent_at_ms: 1,
        kind: Kind::Message,
        body: b"forged".to_vec(),
        blobs: Default::default(),
    };
    let mut forged = ENVELOPE_MAGIC.to_vec();
    codec::encode_into(&weak, &mut forged);
    forged.extend_from_slice(&identity_point());
    forged.extend_from_slice(&[0; 32]);
    out.put(t, "weak-key-forgery", &forged);
}

pub(super) fn identity_point() -> [u8; 32] {
    let mut point = [0; 32];
    point[0] = 1;
    point
}

pub(super) fn client_frames(out: &Dir, f: &Fixture) {
    let t = "client_request";
    let requests = vec![
        (
            "register",
            Request::Register(Box::new(Register {
                cert: f.cert(),
                invite: Some("invite-code".into()),
                list: None,
            })),
        ),
        (
            "upload-keys",
            Request::UploadKeys(Box::new(tidings_protocol::client::UploadKeys {
                identity: Some(f.identity()),
                one_time_keys: BoundedVec::new(vec![f.prekey(10, false), f.prekey(11, false)])
                    .unwrap(),
                fallback: Some(f.prekey(12, true)),
            })),
        ),
        (
            "publish-home",
            Request::PublishHome(Box::new(f.home("12D3KooWrelay", 1))),
        ),
        ("claim", Request::ClaimBundle { device: f.peer }),
        (
            "claims",
            Request::ClaimBundles {
                devices: BoundedVec::new(vec![f.peer, f.me]).unwrap(),
            },
        ),
        (
            "send",
            Request::Send {
                envelopes: BoundedVec::new(vec![f.direct(1), f.direct(2)]).unwrap(),
            },
        ),
        ("subscribe", Request::Subscribe),
        (
            "set-presence",
            Request::SetPresence {
                visibility: Visibility::Contacts,
                allowed: BoundedVec::new(vec![f.peer.user]).unwrap(),
            },
        ),
        (
            "watch-presence",
            Request::WatchPresence {
                users: BoundedVec::new(vec![f.peer.user]).unwrap(),
            },
        ),
        (
            "ephemeral",
            Request::Ephemeral {
                envelope: f.typing(),
            },
        ),
    ];
    for (index, (name, body)) in requests.into_iter().enumerate() {
        let frame = ClientFrame::Request {
            id: index as u64 + 1,
            body,
        };
        out.cbor(t, name, &frame);
    }
    out.cbor(t, "ack", &ClientFrame::Ack { up_to: 42 });
    out.cbor(t, "ping", &ClientFrame::Ping);
    let long_invite = ClientFrame::Request {
        id: 1,
        body: Request::Register(Box::new(Register {
            cert: f.cert(),
            invite: Some("x".repeat(100)),
            list: None,
        })),
    };
    out.cbor(t, "invite-too-long", &long_invite);
    let huge_home = ClientFrame::Request {
        id: 1,
        body: Request::PublishHome(Box::new(f.huge_home())),
    };
    out.cbor(t, "home-record-too-large", &huge_home);
    out.put(
        t,
        "unknown-request",
        &[
            0xa1, 0x61, b'q', 0xa2, 0x61, b'i', 0x01, 0x61, b'b', 0x63, b'n', b'e', b'w',
        ],
    );
}

pub(super) fn relay_frames(out: &Dir, f: &Fixture) {
    let t = "client_response";
    let responses = vec![
        (
            "registered",
            Ok(Response::Registered {
                new: true,
                one_time_keys: 0,
                relay_addrs: BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/4717".into()]).unwrap(),
            }),
        ),
        ("bundle", Ok(Response::Bundle(Box::new(f.bundle())))),
        (
            "bundles",
            Ok(Response::Bundles {
                bundles: BoundedVec::new(vec![
                    Ok(f.bundle()),
                    Err(ErrorAnswer::new(ErrorCode::NoKeys, "no keys")),
                ])
                .unwrap(),
            }),
        ),
        (
            "sent",
            Ok(Response::Sent {
                outcomes: BoundedVec::new(vec![
                    SendOutcome::Accepted,
                    SendOutcome::Duplicate,
                    SendOutcome::Rejected(ErrorAnswer::new(ErrorCode::BadSignature, "bad")),
                ])
                .unwrap(),
            }),
        ),
        (
            "subscribed",
            Ok(Response::Subscribed {
                acked: 3,
                head: 9,
                one_time_keys: 50,
                heartbeat_ms: 10_000,
            }),
        ),
        (
            "presence",
            Ok(Response::Presence {
                reports: BoundedVec::new(vec![
                    PresenceReport {
                        user: f.peer.user,
                        state: PresenceState::Online,
                    },
                    PresenceReport {
                        user: user(),
                        state: PresenceState::Offline {
                            last_seen_ms: Some(7),
                        },
                    },
                ])
                .unwrap(),
            }),
        ),
        (
            "error",
            Err(ErrorAnswer::new(ErrorCode::RateLimited, "slow down")),
        ),
    ];
    for (index, (name, body)) in responses.into_iter().enumerate() {
        out.cbor(
            t,
            name,
            &RelayFrame::Response {
                id: index as u64 + 1,
                body,
            },
        );
    }
    let deliver = RelayFrame::Deliver {
        items: BoundedVec::new(vec![
            Delivery {
                seq: 1,
                item: MailboxItem::Envelope(f.direct(1)),
            },
            Delivery {
                seq: 2,
                item: MailboxItem::Bounce(f.bounce()),
            },
        ])
        .unwrap(),
    };
    out.cbor(t, "deliver", &deliver);
    out.cbor(t, "caught-up", &RelayFrame::CaughtUp { head: 2 });
    out.cbor(
        t,
        "fatal",
        &RelayFrame::Fatal(ErrorAnswer::new(ErrorCode::Malformed, "bad frame")),
    );
    out.cbor(
        t,
        "presence-push",
        &RelayFrame::Presence(PresenceReport {
            user: f.peer.user,
            state: PresenceState::Hidden,
        }),
    );
    out.cbor(t, "ephemeral", &RelayFrame::Ephemeral(f.typing()));
}

pub(super) fn federation_frames(out: &Dir, f: &Fixture) {
    let t = "federation_request";
    let genesis = f.genesis();
    let requests = vec![
        (
            "forward",
            FederationRequest::Forward {
                items: BoundedVec::new(vec![
                    ForwardItem {
                        envelope: f.direct(1),
                        recipients: BoundedVec::new(vec![f.peer.user]).unwrap(),
                        group_version: 0,
                    },
                    ForwardItem {
                        envelope: f.envelope(2, Recipient::Group(f.group), Kind::Message, b"m"),
                        recipients: BoundedVec::new(vec![f.peer.user, user()]).unwrap(),
                        group_version: 1,
                    },
                ])
                .unwrap(),
                certs: BoundedVec::new(vec![f.cert()]).unwrap(),
            },
        ),
        (
            "handoff-home-record-too-large",
            FederationRequest::Handoff {
                home: Box::new(f.huge_home()),
                previous: Box::new(f.home("12D3KooWold", 1)),
                items: BoundedVec::default(),
            },
        ),
        (
            "group-version",
            FederationRequest::GroupVersion { group: f.group },
        ),
        (
            "descriptors",
            FederationRequest::Descriptors {
                versions: BoundedVec::new(vec![genesis.clone(), f.successor(&genesis)]).unwrap(),
            },
        ),
        (
            "claims",
            FederationRequest::ClaimBundles {
                devices: BoundedVec::new(vec![f.peer]).unwrap(),
                requester: f.me.user,
            },
        ),
        (
            "claim",
            FederationRequest::Claim {
                device: f.peer,
                requester: f.me.user,
            },
        ),
        (
            "handoff",
            FederationRequest::Handoff {
                home: Box::new(f.home("12D3KooWnew", 2)),
                previous: Box::new(f.home("12D3KooWold", 1)),
                items: BoundedVec::new(vec![
                    MailboxItem::Envelope(f.direct(1)),
                    MailboxItem::Bounce(f.bounce()),
                ])
                .unwrap(),
            },
        ),
        (
            "watch-presence",
            FederationRequest::WatchPresence {
                watcher: f.me.user,
                users: BoundedVec::new(vec![f.peer.user]).unwrap(),
            },
        ),
        (
            "presence-changed",
            FederationRequest::PresenceChanged {
                report: PresenceReport {
                    user: f.me.user,
                    state: PresenceState::Offline { last_seen_ms: None },
                },
                watchers: BoundedVec::new(vec![f.peer.user]).unwrap(),
            },
        ),
        (
            "ephemeral",
            FederationRequest::Ephemeral {
                envelope: f.typing(),
                cert: f.cert(),
                recipients: BoundedVec::new(vec![f.peer.user]).unwrap(),
            },
        ),
    ];
    for (index, (name, body)) in requests.into_iter().enumerate() {
        let frame = FederationFrame::Request {
            id: index as u64 + 1,
            body,
        };
        out.cbor(t, name, &frame);
    }
    let responses = vec![
        (
            "stored",
            Ok(FederationResponse::Stored {
                outcomes: BoundedVec::new(vec![SendOutcome::Accepted, SendOutcome::Duplicate])
                    .unwrap(),
            }),
        ),
        (
            "bundle",
            Ok(FederationResponse::Bundle(Box::new(f.bundle()))),
        ),
        (
            "bundles",
            Ok(FederationResponse::Bundles {
                bundles: BoundedVec::new(vec![Ok(f.bundle())]).unwrap(),
            }),
        ),
        (
            "group-version-answer",
            Ok(FederationResponse::GroupVersion(3)),
        ),
        (
            "descriptors-stored",
            Ok(FederationResponse::DescriptorsStored),
        ),
        ("presence-taken", Ok(FederationResponse::PresenceTaken)),
        (
            "ephemeral-passed",
            Ok(FederationResponse::EphemeralPassed { reached: 1 }),
        ),
        (
            "refused",
            Err(ErrorAnswer::new(ErrorCode::WrongRelay, "not here")),
        ),
    ];
    for (index, (name, body)) in responses.into_iter().enumerate() {
        let frame = FederationFrame::Response {
            id: index as u64 + 1,
            body,
        };
        out.cbor(t, &format!("response-{name}"), &frame);
    }
}

pub(super) fn frames(out: &Dir, f: &Fixture) {
    let t = "frame_reader";
    let mut wire = vec![7u8];
    framing::encode_frame(&ClientFrame::Ping, &mut wire);
    framing::encode_frame(
        &ClientFrame::Request {
            id: 1,
            body: Request::Send {
                envelopes: BoundedVec::new(vec![f.direct(1)]).unwrap(),
            },
        },
        &mut wire,
    );
    framing::encode_frame(&RelayFrame::CaughtUp { head: 1 }, &mut wire);
    out.put(t, "three-frames", &wire);
    out.put(t, "truncated", &wire[..wire.len() - 5]);
    out.put(t, "oversized-prefix", &[0, 0xff, 0xff, 0xff, 0xff]);
    out.put(t, "empty-frame", &[1, 0, 0, 0, 0]);
}
