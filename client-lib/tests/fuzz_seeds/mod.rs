//! Writes the fuzz seed corpus: valid encodings of every decoded type, and broken ones.

use std::path::Path;

use tidings_client::store::tables::{
    Conversation, Direction, MessageRecord, MessageStatus, OutboundGroup, OutboxContent,
    OutboxEntry,
};
use tidings_keys::Identity;
use tidings_protocol::{
    Address, Bounce, BoundedVec, ContactCard, DeviceCert, DeviceId, Envelope, EnvelopeId,
    ErrorAnswer, ErrorCode, GroupId, HomeRecord, IdentityKey, KeyBundle, Kind, MailboxItem,
    RawEnvelope, Recipient, SignedPreKey, UserId,
    client::{ClientFrame, Delivery, Register, RelayFrame, Request, Response, SendOutcome},
    codec,
    content::{GroupSealed, MegolmBody, OlmBody, Payload, ReceiptStatus, Sealed, SenderKeys},
    envelope::ENVELOPE_MAGIC,
    federation::{FederationFrame, FederationRequest, FederationResponse, ForwardItem},
    framing,
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    presence::{PresenceReport, PresenceState, TypingBody, Visibility},
};
use tidings_relay::{
    RelayConfig,
    store::{Cursor, OutboxMeta, PresenceRecord, UserRecord, tables},
};

/// A fresh user id.
fn user() -> UserId {
    Identity::generate().user_id()
}

/// Keys and ids the seeds are made of (fresh ones each time the seeds are written).
struct Fixture {
    id: Identity,
    me: Address,
    peer: Address,
    group: GroupId,
}

impl Fixture {
    fn new() -> Self {
        let id = Identity::generate();
        Fixture {
            me: id.address(),
            id,
            peer: Identity::generate().address(),
            group: GroupId::from_bytes([7; 16]),
        }
    }

    fn envelope(&self, id: u8, recipient: Recipient, kind: Kind, body: &[u8]) -> RawEnvelope {
        Envelope {
            id: EnvelopeId::from_bytes([id; 16]),
            sender: self.me,
            recipient,
            sent_at_ms: 1_700_000_000_000,
            kind,
            body: body.to_vec(),
        }
        .sign(self.id.device_key())
    }

    fn direct(&self, id: u8) -> RawEnvelope {
        self.envelope(
            id,
            Recipient::Direct(self.peer),
            Kind::Message,
            b"olm ciphertext",
        )
    }

    fn typing(&self) -> RawEnvelope {
        let body = TypingBody { typing: true }.encode();
        self.envelope(9, Recipient::Direct(self.peer), Kind::Typing, &body)
    }

    fn cert(&self) -> DeviceCert {
        self.id.cert().clone()
    }

    fn identity(&self) -> IdentityKey {
        IdentityKey::sign(self.id.device_key(), [5; 32])
    }

    fn prekey(&self, byte: u8, fallback: bool) -> SignedPreKey {
        SignedPreKey::sign(self.id.device_key(), [byte; 32], fallback)
    }

    fn bundle(&self) -> KeyBundle {
        KeyBundle {
            cert: self.cert(),
            identity: self.identity(),
            prekey: self.prekey(6, false),
        }
    }

    fn home(&self, relay: &str, seq: u64) -> HomeRecord {
        HomeRecord::sign(
            self.id.account_key(),
            relay.into(),
            BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/4717".into()]).unwrap(),
            seq,
            4_000_000_000_000,
        )
    }

    /// A validly signed record whose addresses make it too large for the DHT.
    fn huge_home(&self) -> HomeRecord {
        HomeRecord::sign(
            self.id.account_key(),
            "12D3KooWrelay".into(),
            BoundedVec::new(vec![format!("/dns/{}/tcp/1", "a".repeat(300)); 8]).unwrap(),
            2,
            4_000_000_000_000,
        )
    }

    fn genesis(&self) -> SignedDescriptor {
        let members = Descriptor::normalize(vec![
            GroupMember {
                user: self.me.user,
                role: Role::Admin,
            },
            GroupMember {
                user: self.peer.user,
                role: Role::Member,
            },
        ]);
        SignedDescriptor::sign(
            self.id.account_key(),
            Descriptor {
                group: self.group,
                version: 1,
                previous: None,
                name: "friends".into(),
                members: BoundedVec::new(members).unwrap(),
                author: self.me.user,
            },
        )
    }

    fn successor(&self, known: &SignedDescriptor) -> SignedDescriptor {
        SignedDescriptor::sign(
            self.id.account_key(),
            Descriptor {
                version: known.descriptor.version + 1,
                previous: Some(known.hash()),
                name: "friends, renamed".into(),
                ..known.descriptor.clone()
            },
        )
    }

    fn card(&self) -> ContactCard {
        ContactCard {
            user: self.me.user,
            name: Some("alice".into()),
            relay: "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".into(),
            addrs: BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/4717".into()]).unwrap(),
        }
    }

    fn bounce(&self) -> Bounce {
        Bounce {
            id: EnvelopeId::from_bytes([8; 16]),
            to: self.peer.user,
            reason: ErrorAnswer::new(ErrorCode::Undeliverable, "relay unreachable"),
        }
    }

    fn payloads(&self) -> Vec<(&'static str, Payload)> {
        vec![
            ("text", Payload::Text { text: "hi".into() }),
            (
                "group-key",
                Payload::GroupKey {
                    group: self.group,
                    session_key: vec![1; 32],
                },
            ),
            (
                "receipt",
                Payload::Receipt {
                    status: ReceiptStatus::Read,
                    ids: BoundedVec::new(vec![EnvelopeId::from_bytes([1; 16])]).unwrap(),
                },
            ),
            (
                "read-up-to",
                Payload::ReadUpTo {
                    group: Some(self.group),
                    up_to: EnvelopeId::from_bytes([2; 16]),
                },
            ),
        ]
    }
}

struct Dir<'a>(&'a Path);

impl Dir<'_> {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn cbor<T: serde::Serialize>(&self, target: &str, name: &str, value: &T) {
        self.put(target, name, &codec::encode(value));
    }
}

/// Writes (over) the generated seeds; others in the folders (`regression-*`, inputs a fuzz
/// run found) stay.
pub fn write_all(root: &Path) {
    let out = Dir(root);
    let f = Fixture::new();
    envelopes(&out, &f);
    client_frames(&out, &f);
    relay_frames(&out, &f);
    federation_frames(&out, &f);
    home_records(&out, &f);
    descriptors(&out, &f);
    content(&out, &f);
    texts(&out, &f);
    frames(&out, &f);
    relay_config(&out);
    relay_store(&out, &f);
    client_store(&out, &f);
    key_files(&out);
}

fn envelopes(out: &Dir, f: &Fixture) {
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
    };
    let mut forged = ENVELOPE_MAGIC.to_vec();
    codec::encode_into(&weak, &mut forged);
    forged.extend_from_slice(&identity_point());
    forged.extend_from_slice(&[0; 32]);
    out.put(t, "weak-key-forgery", &forged);
}

fn identity_point() -> [u8; 32] {
    let mut point = [0; 32];
    point[0] = 1;
    point
}

fn client_frames(out: &Dir, f: &Fixture) {
    let t = "client_request";
    let requests = vec![
        (
            "register",
            Request::Register(Box::new(Register {
                cert: f.cert(),
                invite: Some("invite-code".into()),
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
        ("claim", Request::ClaimBundle { user: f.peer.user }),
        (
            "claims",
            Request::ClaimBundles {
                users: BoundedVec::new(vec![f.peer.user, user()]).unwrap(),
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

fn relay_frames(out: &Dir, f: &Fixture) {
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

fn federation_frames(out: &Dir, f: &Fixture) {
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
                users: BoundedVec::new(vec![f.peer.user]).unwrap(),
            },
        ),
        ("claim", FederationRequest::Claim { user: f.peer.user }),
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

fn home_records(out: &Dir, f: &Fixture) {
    let t = "home_record";
    let record = f.home("12D3KooWrelay", 3);
    out.put(t, "valid", &record.encode());
    let expired = HomeRecord::sign(
        f.id.account_key(),
        "12D3KooWrelay".into(),
        BoundedVec::default(),
        1,
        1,
    );
    out.put(t, "expired", &expired.encode());
    let mut tampered = record.clone();
    tampered.seq += 1;
    out.put(t, "bad-signature", &tampered.encode());
    out.put(t, "truncated", &record.encode()[..30]);
}

fn descriptors(out: &Dir, f: &Fixture) {
    let t = "group_descriptor";
    let genesis = f.genesis();
    out.put(t, "genesis", &genesis.encode());
    out.put(t, "successor", &f.successor(&genesis).encode());
    let mut no_admin = genesis.descriptor.clone();
    no_admin.members = BoundedVec::new(vec![GroupMember {
        user: f.peer.user,
        role: Role::Member,
    }])
    .unwrap();
    out.put(
        t,
        "no-admin",
        &SignedDescriptor::sign(f.id.account_key(), no_admin).encode(),
    );
}

fn content(out: &Dir, f: &Fixture) {
    let t = "content";
    let olm = OlmBody {
        message_type: 0,
        ciphertext: vec![0xab; 48],
        sender_keys: Some(SenderKeys {
            cert: f.cert(),
            identity: f.identity(),
        }),
    };
    out.put(t, "olm-prekey", &olm.encode());
    let megolm = MegolmBody {
        session_id: "c2Vzc2lvbg".into(),
        ciphertext: vec![0xcd; 48],
    };
    out.put(t, "megolm", &megolm.encode());
    for (name, payload) in f.payloads() {
        out.put(t, &format!("payload-{name}"), &payload.encode());
    }
    let sealed = Sealed {
        id: EnvelopeId::from_bytes([1; 16]),
        from: f.me,
        to: f.peer,
        payload: Payload::Text { text: "hi".into() },
    };
    out.put(t, "sealed", &sealed.encode());
    let group = GroupSealed {
        id: EnvelopeId::from_bytes([2; 16]),
        from: f.me,
        group: f.group,
        payload: Payload::Text {
            text: "hi all".into(),
        },
    };
    out.put(t, "group-sealed", &group.encode());
    let t = "presence";
    out.put(t, "typing", &TypingBody { typing: true }.encode());
    out.put(t, "stopped", &TypingBody { typing: false }.encode());
    out.put(t, "not-a-map", &[0x82, 0x01, 0x02]);
}

fn texts(out: &Dir, f: &Fixture) {
    let t = "contact_card";
    out.put(t, "card", f.card().to_string().as_bytes());
    out.put(t, "card-padded", format!("  {}\n", f.card()).as_bytes());
    out.put(t, "user-id", f.me.user.to_string().as_bytes());
    out.put(
        t,
        "envelope-id",
        EnvelopeId::from_bytes([0xa5; 16]).to_string().as_bytes(),
    );
    out.put(t, "not-base58", b"tidings:0OIl");
}

fn frames(out: &Dir, f: &Fixture) {
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

fn relay_config(out: &Dir) {
    let t = "relay_config";
    out.put(
        t,
        "default",
        RelayConfig::default().to_commented_toml().as_bytes(),
    );
    out.put(
        t,
        "small",
        b"name = \"r1\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nmetrics_listen = \"127.0.0.1:9717\"\n\n[registration]\npolicy = \"invite\"\n\n[presence]\nheartbeat_timeout_secs = 5\n",
    );
    out.put(t, "unknown-key", b"nmae = \"typo\"\n");
    out.put(t, "bad-address", b"listen = [\"localhost:80\"]\n");
}

fn relay_store(out: &Dir, f: &Fixture) {
    let t = "relay_store_records";
    let user = UserRecord {
        cert: f.cert(),
        registered_at_ms: 1_700_000_000_000,
        identity: Some(f.identity()),
        fallback: Some(f.prekey(12, true)),
        home: Some(f.home("12D3KooWrelay", 1)),
        here: None,
    };
    out.cbor(t, "user", &user);
    let presence = PresenceRecord {
        visibility: Visibility::Contacts,
        allowed: vec![f.peer.user],
        last_seen_ms: Some(5),
    };
    out.cbor(t, "presence", &presence);
    out.put(
        t,
        "blob-ref",
        &tables::blob_ref(&EnvelopeId::from_bytes([3; 16])),
    );
    out.put(
        t,
        "mailbox-envelope",
        &MailboxItem::Envelope(f.direct(1)).to_stored(),
    );
    out.put(
        t,
        "mailbox-bounce",
        &MailboxItem::Bounce(f.bounce()).to_stored(),
    );
    out.cbor(t, "one-time-key", &f.prekey(10, false));
    out.put(t, "cursor", &Cursor { head: 9, acked: 3 }.to_bytes());
    let meta = OutboxMeta {
        sender: f.me.user,
        recipient: f.peer.user,
        id: EnvelopeId::from_bytes([1; 16]),
        accepted_at_ms: 1_700_000_000_000,
    };
    out.put(t, "outbox-meta", &meta.to_bytes());
}

fn client_store(out: &Dir, f: &Fixture) {
    let t = "client_store_records";
    let message = MessageRecord {
        id: EnvelopeId::from_bytes([1; 16]),
        peer: f.peer.user,
        group: None,
        direction: Direction::Outgoing,
        text: "hi".into(),
        sent_at_ms: 1,
        stored_at_ms: 2,
        status: MessageStatus::Failed("unknown_recipient".into()),
    };
    out.cbor(t, "message", &message);
    let encrypted = OutboxEntry {
        id: EnvelopeId::from_bytes([2; 16]),
        to: Conversation::Direct(f.peer.user),
        kind: Kind::Message,
        content: OutboxContent::Encrypted(Payload::Text { text: "hi".into() }),
        sealed: Some(f.direct(2)),
    };
    out.cbor(t, "outbox-encrypted", &encrypted);
    let plain = OutboxEntry {
        id: EnvelopeId::from_bytes([3; 16]),
        to: Conversation::Group(f.group),
        kind: Kind::GroupControl,
        content: OutboxContent::Plain(f.genesis().encode()),
        sealed: None,
    };
    out.cbor(t, "outbox-plain", &plain);
    out.cbor(t, "contact", &f.card());
    let outbound = OutboundGroup {
        pickle: "pickled megolm session".into(),
        shared_with: vec![f.peer.user],
    };
    out.cbor(t, "group-outbound", &outbound);
    let keys = SenderKeys {
        cert: f.cert(),
        identity: f.identity(),
    };
    out.cbor(t, "sender-keys", &keys);
    out.put(t, "home-record", &f.home("12D3KooWrelay", 1).encode());
    out.put(t, "group", &f.genesis().encode());
}

fn key_files(out: &Dir) {
    let t = "key_file";
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let plain = dir.path().join("plain");
    identity.save(&plain, None).unwrap();
    out.put(t, "plain", &std::fs::read(&plain).unwrap());
    let sealed = dir.path().join("sealed");
    identity.save(&sealed, Some("passphrase")).unwrap();
    out.put(t, "sealed", &std::fs::read(&sealed).unwrap());
    out.put(t, "wrong-version", &[0xa1, 0x61, b'v', 0x02]);
}
