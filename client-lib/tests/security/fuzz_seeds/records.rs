//! Seeds of home records, descriptors, end-to-end content, texts, config, stored records and key files.

use super::*;

pub(super) fn home_records(out: &Dir, f: &Fixture) {
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

pub(super) fn descriptors(out: &Dir, f: &Fixture) {
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

pub(super) fn content(out: &Dir, f: &Fixture) {
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
        message: Some(EnvelopeId::from_bytes([4; 16])),
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

pub(super) fn texts(out: &Dir, f: &Fixture) {
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

pub(super) fn relay_config(out: &Dir) {
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

pub(super) fn relay_store(out: &Dir, f: &Fixture) {
    let t = "relay_store_records";
    let user = UserRecord {
        registered_at_ms: 1_700_000_000_000,
        home: Some(f.home("12D3KooWrelay", 1)),
        here: None,
    };
    out.cbor(t, "user", &user);
    let device = DeviceRecord {
        cert: f.cert(),
        registered_at_ms: 1_700_000_000_000,
        identity: Some(f.identity()),
        fallback: Some(f.prekey(12, true)),
        last_seen_ms: Some(5),
    };
    out.cbor(t, "device", &device);
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

pub(super) fn client_store(out: &Dir, f: &Fixture) {
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
        media: None,
    };
    out.cbor(t, "message", &message);
    let encrypted = OutboxEntry {
        id: EnvelopeId::from_bytes([2; 16]),
        to: Conversation::Direct(f.peer.user),
        kind: Kind::Message,
        content: OutboxContent::Encrypted(Payload::Text { text: "hi".into() }),
        sealed: vec![SealedCopy {
            to: Recipient::Direct(f.peer),
            envelope: f.direct(2),
        }],
        only: None,
    };
    out.cbor(t, "outbox-encrypted", &encrypted);
    let plain = OutboxEntry {
        id: EnvelopeId::from_bytes([3; 16]),
        to: Conversation::Group(f.group),
        kind: Kind::GroupControl,
        content: OutboxContent::Plain(f.genesis().encode()),
        sealed: Vec::new(),
        only: Some(f.peer.device),
    };
    out.cbor(t, "outbox-plain", &plain);
    let media = tidings_protocol::media::MediaMessage {
        blob: tidings_protocol::BlobRef {
            id: tidings_protocol::BlobId::of(b"sealed file"),
            relay: "12D3KooWrelay".into(),
            size: 1016,
        },
        key: [7; 32],
        nonce: [1; 7],
        chunk: tidings_protocol::media::MEDIA_CHUNK,
        size: 1000,
        name: "beach.jpg".into(),
        mime: "image/jpeg".into(),
        kind: tidings_protocol::media::MediaKind::Image,
        thumbnail: Some(vec![0xff, 0xd8, 0xff]),
        caption: Some("look".into()),
    };
    let photo = MessageRecord {
        id: EnvelopeId::from_bytes([4; 16]),
        text: "look".into(),
        status: MessageStatus::Received,
        media: Some(Box::new(media.clone())),
        ..message.clone()
    };
    out.cbor(t, "message-media", &photo);
    let upload = tidings_client::store::tables::UploadRecord {
        blob: media.blob.clone(),
        key: media.key,
        nonce: media.nonce,
        plain_size: media.size,
        uploaded: true,
    };
    out.cbor(t, "upload", &upload);
    out.cbor(t, "contact", &f.card());
    let outbound = OutboundGroup {
        pickle: "pickled megolm session".into(),
        shared_with: vec![f.peer],
        queued_for: vec![f.peer.user],
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

pub(super) fn key_files(out: &Dir) {
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
