//! Property tests: every codec round-trips, and no input bytes make a decoder panic.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use tidings_protocol::{
    Address, BoundedVec, ContactCard, DeviceCert, DeviceId, Envelope, EnvelopeId, GroupId,
    IdentityKey, KeyBundle, Kind, RawEnvelope, Recipient, SignedPreKey, UserId,
    client::{ClientFrame, Delivery, RelayFrame, Request, Response, SendOutcome},
    codec,
    content::{HistoryItem, HistoryState, MAX_HISTORY_ITEMS, OlmBody, Payload, ReceiptStatus},
    errors::{ErrorAnswer, ErrorCode},
    framing,
};

fn key(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

fn arb_address() -> impl Strategy<Value = (SigningKey, Address)> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, d)| {
        let device = key(d);
        let address = Address {
            user: UserId::from(&key(a).verifying_key()),
            device: DeviceId::from(&device.verifying_key()),
        };
        (device, address)
    })
}

fn arb_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Message),
        Just(Kind::Receipt),
        Just(Kind::Typing),
        Just(Kind::KeyShare),
        Just(Kind::GroupControl),
    ]
}

fn arb_envelope() -> impl Strategy<Value = (SigningKey, Envelope)> {
    (
        arb_address(),
        arb_address(),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u64>(),
        arb_kind(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(
            |((device, sender), (_, to), group, id, gid, at, kind, body)| {
                let recipient = if group {
                    Recipient::Group(GroupId::from_bytes(gid))
                } else {
                    Recipient::Direct(to)
                };
                let envelope = Envelope {
                    id: EnvelopeId::from_bytes(id),
                    sender,
                    recipient,
                    sent_at_ms: at,
                    kind,
                    body,
                    blobs: Default::default(),
                };
                (device, envelope)
            },
        )
}

fn arb_bundle() -> impl Strategy<Value = KeyBundle> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<bool>(),
    )
        .prop_map(|(account, device, curve, fallback)| {
            let device = key(device);
            KeyBundle {
                cert: DeviceCert::issue(&key(account), DeviceId::from(&device.verifying_key()), 9),
                identity: IdentityKey::sign(&device, curve),
                prekey: SignedPreKey::sign(&device, curve, fallback),
            }
        })
}

fn arb_error() -> impl Strategy<Value = ErrorAnswer> {
    (
        prop_oneof![
            Just(ErrorCode::Malformed),
            Just(ErrorCode::BadSignature),
            Just(ErrorCode::Storage),
            Just(ErrorCode::IdReused),
        ],
        ".{0,40}",
    )
        .prop_map(|(code, detail)| ErrorAnswer::new(code, detail))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn envelopes_round_trip_through_sign_and_open((device, envelope) in arb_envelope()) {
        let raw = envelope.sign(&device);
        prop_assert_eq!(raw.open(), Ok(envelope));
    }

    #[test]
    fn a_flipped_bit_never_opens((device, envelope) in arb_envelope(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = envelope.sign(&device).into_bytes();
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        prop_assert!(RawEnvelope::from_bytes(bytes).open().is_err());
    }

    #[test]
    fn client_frames_round_trip((device, envelope) in arb_envelope(), id in any::<u64>(), up_to in any::<u64>(), bundle in arb_bundle()) {
        let frames = vec![
            ClientFrame::Request { id, body: Request::Send { envelopes: BoundedVec::new(vec![envelope.sign(&device)]).unwrap() } },
            ClientFrame::Request { id, body: Request::ClaimBundle { device: bundle.cert.address() } },
            ClientFrame::Request { id, body: Request::Subscribe },
            ClientFrame::Ack { up_to },
        ];
        for frame in frames {
            let bytes = codec::encode(&frame);
            prop_assert_eq!(ClientFrame::decode(&bytes), Ok(frame));
        }
    }

    #[test]
    fn relay_frames_round_trip((device, envelope) in arb_envelope(), seq in any::<u64>(), bundle in arb_bundle(), error in arb_error()) {
        let frames = vec![
            RelayFrame::Deliver { items: BoundedVec::new(vec![Delivery { seq, item: tidings_protocol::MailboxItem::Envelope(envelope.sign(&device)) }]).unwrap() },
            RelayFrame::Response { id: seq, body: Ok(Response::Bundle(Box::new(bundle))) },
            RelayFrame::Response { id: seq, body: Ok(Response::Sent { outcomes: BoundedVec::new(vec![SendOutcome::Accepted, SendOutcome::Duplicate, SendOutcome::Rejected(error.clone())]).unwrap() }) },
            RelayFrame::Response { id: seq, body: Err(error.clone()) },
            RelayFrame::CaughtUp { head: seq },
            RelayFrame::Fatal(error),
        ];
        for frame in frames {
            let mut wire = Vec::new();
            framing::encode_frame(&frame, &mut wire);
            prop_assert_eq!(RelayFrame::decode(&wire[4..]), Ok(frame));
        }
    }

    #[test]
    fn payloads_and_cards_round_trip(text in ".{0,200}", ids in proptest::collection::vec(any::<[u8; 16]>(), 0..20), (_, address) in arb_address(), name in proptest::option::of("[a-z]{1,20}"), up_to in any::<[u8; 16]>(), group in proptest::option::of(any::<[u8; 16]>())) {
        let payloads = vec![
            Payload::ReadUpTo { group: group.map(GroupId::from_bytes), up_to: EnvelopeId::from_bytes(up_to) },
            Payload::Receipt { status: ReceiptStatus::Read, ids: BoundedVec::new(ids.iter().copied().map(EnvelopeId::from_bytes).collect()).unwrap() },
            Payload::History {
                messages: BoundedVec::new(ids.iter().take(MAX_HISTORY_ITEMS).enumerate().map(|(at, id)| HistoryItem {
                    peer: address.user,
                    // 1:1 and group messages mixed, as one history carries them.
                    group: group.filter(|_| at % 2 == 0).map(GroupId::from_bytes),
                    id: EnvelopeId::from_bytes(*id),
                    outgoing: at % 3 == 0,
                    text: text.clone(),
                    sent_at_ms: u64::from(id[0]),
                    state: HistoryState::Unread,
                    media: None,
                }).collect()).unwrap(),
                done: 1,
                total: 2,
            },
            Payload::Text { text },
        ];
        for payload in payloads {
            prop_assert_eq!(Payload::decode(&payload.encode()), Ok(payload));
        }
        let card = ContactCard {
            user: address.user,
            name,
            relay: "12D3KooWexample".into(),
            addrs: BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/7710".into()]).unwrap(),
        };
        prop_assert_eq!(card.to_string().parse::<ContactCard>(), Ok(card));
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = ClientFrame::decode(&bytes);
        let _ = RelayFrame::decode(&bytes);
        let _ = RawEnvelope::from_bytes(bytes.clone()).open();
        let _ = OlmBody::decode(&bytes);
        let _ = Payload::decode(&bytes);
        let _ = codec::decode::<KeyBundle>(&bytes, 4096);
        let _ = String::from_utf8_lossy(&bytes).parse::<ContactCard>();
        let mut prefixed = b"TDE1".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = RawEnvelope::from_bytes(prefixed).open();
    }

    #[test]
    fn mutated_valid_frames_never_panic((device, envelope) in arb_envelope(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let frame = ClientFrame::Request { id: 1, body: Request::Send { envelopes: BoundedVec::new(vec![envelope.sign(&device)]).unwrap() } };
        let mut bytes = codec::encode(&frame);
        let at = at.index(bytes.len());
        bytes[at] = byte;
        if let Ok(ClientFrame::Request { body: Request::Send { envelopes }, .. }) = ClientFrame::decode(&bytes) {
            for raw in envelopes.iter() {
                let _ = raw.open();
            }
        }
    }
}

/// A history item as a release before group history wrote it.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct ItemBeforeGroups {
    #[serde(rename = "u")]
    peer: UserId,
    #[serde(rename = "i")]
    id: EnvelopeId,
    #[serde(rename = "o")]
    outgoing: bool,
    #[serde(rename = "t")]
    text: String,
    #[serde(rename = "s")]
    sent_at_ms: u64,
    #[serde(rename = "r")]
    state: HistoryState,
}

#[test]
fn history_items_without_a_group_keep_the_encoding_of_older_releases() {
    let old = ItemBeforeGroups {
        peer: UserId::from_bytes([3; 32]),
        id: EnvelopeId::from_bytes([7; 16]),
        outgoing: true,
        text: "hi".into(),
        sent_at_ms: 42,
        state: HistoryState::Delivered,
    };
    let item = HistoryItem {
        peer: old.peer,
        group: None,
        id: old.id,
        outgoing: old.outgoing,
        text: old.text.clone(),
        sent_at_ms: old.sent_at_ms,
        state: old.state,
        media: None,
    };
    // An older device's item is a 1:1 message here, and ours reads the same there.
    assert_eq!(codec::encode(&item), codec::encode(&old));
    assert_eq!(codec::decode(&codec::encode(&old), 1024), Ok(item.clone()));
    let in_group = HistoryItem {
        group: Some(GroupId::from_bytes([9; 16])),
        ..item
    };
    assert_eq!(codec::decode(&codec::encode(&in_group), 1024), Ok(in_group));
}
