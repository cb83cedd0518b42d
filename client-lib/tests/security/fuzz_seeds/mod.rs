//! Writes the fuzz seed corpus: valid encodings of every decoded type, and broken ones.

mod frames;
mod records;

use std::path::Path;

use tidings_client::store::tables::{
    Conversation, Direction, MessageRecord, MessageStatus, OutboundGroup, OutboxContent,
    OutboxEntry, SealedCopy,
};
use tidings_keys::Identity;
use tidings_protocol::{
    Address, Bounce, BoundedVec, ContactCard, DeviceCert, DeviceId, Envelope, EnvelopeId,
    ErrorAnswer, ErrorCode, GroupId, HomeRecord, IdentityKey, KeyBundle, Kind, MailboxItem,
    RawEnvelope, Recipient, SignedPreKey, UserId,
    client::{ClientFrame, Delivery, Register, RelayFrame, Request, Response, SendOutcome},
    codec,
    content::{
        Chat, ContactChange, GroupSealed, MegolmBody, OlmBody, Payload, ReceiptStatus, Sealed,
        SenderKeys,
    },
    envelope::ENVELOPE_MAGIC,
    federation::{FederationFrame, FederationRequest, FederationResponse, ForwardItem},
    framing,
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    presence::{PresenceReport, PresenceState, TypingBody, Visibility},
};
use tidings_relay::{
    RelayConfig,
    store::{Cursor, DeviceRecord, OutboxMeta, PresenceRecord, UserRecord, tables},
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

/// The salt of the fixture's group.
const GROUP_SALT: [u8; 16] = [7; 16];

impl Fixture {
    fn new() -> Self {
        let id = Identity::generate();
        let group = tidings_protocol::group::group_id_for(&id.user_id(), &GROUP_SALT);
        Fixture {
            me: id.address(),
            id,
            peer: Identity::generate().address(),
            group,
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
            blobs: Default::default(),
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
                salt: Some(GROUP_SALT),
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
                salt: None,
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
            (
                "sent-text",
                Payload::SentText {
                    to: self.peer.user,
                    text: "hi".into(),
                },
            ),
            (
                "read-marker",
                Payload::ReadMarker {
                    chat: Chat::Direct(self.peer.user),
                    up_to: EnvelopeId::from_bytes([3; 16]),
                },
            ),
            (
                "contact",
                Payload::Contact {
                    change: ContactChange::Saved {
                        name: "bob".into(),
                        card: self.card(),
                    },
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
    use self::{frames::*, records::*};
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
