//! Sender impersonation: a device with an honest Olm session to Bob must never make Bob's
//! client take its envelopes as another account's, nor re-bind that account to itself.
//!
//! Alice and Bob are real client stores; Mallory crafts her envelopes with the keys crate as
//! an attacker would, and they reach Bob's store directly (as a relay that does not check
//! would hand them over).

use tidings_client::{Event, store::Conversation};
use tidings_keys::{Identity, OlmAccount, PeerSessions};
use tidings_protocol::{
    Address, Envelope, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient,
    content::{OlmBody, Payload, Sealed},
    now_ms,
};

use crate::common::store_device::StoreDevice as Device;

impl Device {
    /// Takes `other`'s signed device list, as fetching it would.
    fn knows(&self, other: &Identity) {
        crate::common::knows(&self.store, other);
    }

    /// Queues a text for `to` and seals it.
    fn text_to(&self, to: Address, text: &str) -> RawEnvelope {
        let me = self.identity.user_id();
        self.store
            .queue_texts(me, Conversation::Direct(to.user), vec![text.into()])
            .unwrap();
        let (seq, _) = self.store.pending(16).unwrap().pop().unwrap();
        self.store
            .seal(&self.identity, seq, vec![to])
            .unwrap()
            .remove(0)
            .envelope
    }

    fn receive(&self, raw: &RawEnvelope) -> Vec<Event> {
        let envelope = raw.open().unwrap();
        self.store
            .receive(&self.identity, &[(envelope, raw.clone())], &[])
            .unwrap()
            .events
    }
}

/// Mallory: her own account and device, and an Olm account used by hand.
struct Mallory {
    identity: Identity,
    account: OlmAccount,
    sessions: PeerSessions,
}

impl Mallory {
    fn with_session_to(bob: &Device) -> Self {
        let identity = Identity::generate();
        let account = OlmAccount::new();
        let mut sessions = PeerSessions::new();
        let session = account
            .create_outbound_session(&bob.identity.user_id(), &bob.bundle(0))
            .unwrap();
        sessions.add(session);
        Self {
            identity,
            account,
            sessions,
        }
    }

    /// Encrypts `payload` to Bob on her session, with the envelope and the sealed plaintext
    /// claiming `sender`, signed by her device (so the signature verifies).
    fn craft(
        &mut self,
        bob: &Device,
        sender: Address,
        kind: Kind,
        payload: Payload,
        attach_keys: bool,
    ) -> RawEnvelope {
        let id = EnvelopeId::random();
        let sealed = Sealed {
            id,
            from: sender,
            to: bob.identity.address(),
            payload,
            message: None,
        };
        let keys = self.account.sender_keys(&self.identity);
        let mut body: OlmBody = self
            .sessions
            .encrypt(&sealed.encode(), &keys)
            .unwrap()
            .unwrap();
        if attach_keys {
            body.sender_keys = Some(keys);
        }
        Envelope {
            id,
            sender,
            recipient: Recipient::Direct(bob.identity.address()),
            sent_at_ms: now_ms(),
            kind,
            body: body.encode(),
            blobs: Default::default(),
        }
        .sign(self.identity.device_key())
    }

    fn as_herself(&self) -> Address {
        self.identity.address()
    }

    /// Her device, claiming to be Alice's.
    fn as_alice(&self, alice: &Device) -> Address {
        Address {
            user: alice.identity.user_id(),
            device: self.identity.device_id(),
        }
    }

    fn open_reply(&mut self, bob: &Device, raw: &RawEnvelope) {
        let envelope = raw.open().unwrap();
        let body = OlmBody::decode(&envelope.body).unwrap();
        self.sessions
            .decrypt(&mut self.account, &bob.identity.address(), &body)
            .unwrap();
    }
}

fn text(text: &str) -> Payload {
    Payload::Text { text: text.into() }
}

/// Messages Bob's store attributes to Alice.
fn from_alice(events: &[Event], alice: &Device) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message(record) if record.peer == alice.identity.user_id() => {
                Some(record.text.clone())
            }
            _ => None,
        })
        .collect()
}

struct Scene {
    alice: Device,
    bob: Device,
    mallory: Mallory,
}

/// Alice and Mallory each open an honest session with Bob.
fn scene() -> Scene {
    let alice = Device::new();
    let bob = Device::new();
    let mut mallory = Mallory::with_session_to(&bob);
    bob.knows(&alice.identity);
    bob.knows(&mallory.identity);
    alice.knows(&bob.identity);
    let hello = mallory.craft(
        &bob,
        mallory.as_herself(),
        Kind::Message,
        text("hi Bob, Mallory here"),
        false,
    );
    let events = bob.receive(&hello);
    assert!(
        matches!(&events[..], [Event::Message(record)] if record.peer == mallory.identity.user_id()),
        "Mallory's honest first message is taken: {events:?}"
    );
    alice
        .store
        .install_outbound(&alice.identity, &bob.identity.address(), &bob.bundle(1))
        .unwrap();
    let events = bob.receive(&alice.text_to(bob.identity.address(), "hi Bob, Alice here"));
    assert_eq!(from_alice(&events, &alice), ["hi Bob, Alice here"]);
    Scene {
        alice,
        bob,
        mallory,
    }
}

/// Bob still sends to Alice's own device and shows nothing from "Alice" but her message.
fn assert_alice_intact(scene: &Scene, events: &[Event]) {
    assert!(
        from_alice(events, &scene.alice).is_empty(),
        "Bob took Mallory's envelope as Alice's: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::Undecryptable { .. })),
        "the forged envelope is recorded as failed: {events:?}"
    );
    let alice_devices: Vec<_> = scene
        .bob
        .store
        .device_list(&scene.alice.identity.user_id())
        .unwrap()
        .unwrap()
        .list
        .devices
        .iter()
        .map(|entry| entry.device)
        .collect();
    assert_eq!(
        alice_devices,
        [scene.alice.identity.device_id()],
        "Bob's next message to Alice must still go to Alice's device"
    );
    let history = scene
        .bob
        .store
        .history(&Conversation::Direct(scene.alice.identity.user_id()))
        .unwrap();
    let texts: Vec<&str> = history
        .iter()
        .filter(|record| !record.text.is_empty())
        .map(|record| record.text.as_str())
        .collect();
    assert_eq!(texts, ["hi Bob, Alice here"]);
}

#[test]
fn a_pre_key_message_claiming_another_account_is_refused() {
    let mut scene = scene();
    let as_alice = scene.mallory.as_alice(&scene.alice);
    // Her session still sends pre-key messages (Bob has not answered): sender keys attached.
    let forged = scene.mallory.craft(
        &scene.bob,
        as_alice,
        Kind::Message,
        text("It's Alice, new phone"),
        true,
    );
    let events = scene.bob.receive(&forged);
    assert_alice_intact(&scene, &events);
}

#[test]
fn a_normal_message_claiming_another_account_is_refused_with_or_without_sender_keys() {
    let mut scene = scene();
    let reply = scene.bob.text_to(scene.mallory.as_herself(), "hi Mallory");
    scene.mallory.open_reply(&scene.bob, &reply);
    let as_alice = scene.mallory.as_alice(&scene.alice);
    for attach_keys in [true, false] {
        let forged = scene.mallory.craft(
            &scene.bob,
            as_alice,
            Kind::Message,
            text("It's Alice, new phone"),
            attach_keys,
        );
        let events = scene.bob.receive(&forged);
        assert_alice_intact(&scene, &events);
    }
}

#[test]
fn receipts_and_group_keys_cannot_be_forged_in_another_accounts_name() {
    let mut scene = scene();
    let as_alice = scene.mallory.as_alice(&scene.alice);
    let group = GroupId::random();
    let forged_key = scene.mallory.craft(
        &scene.bob,
        as_alice,
        Kind::KeyShare,
        Payload::GroupKey {
            group,
            session_key: vec![0; 32],
        },
        true,
    );
    let events = scene.bob.receive(&forged_key);
    assert_alice_intact(&scene, &events);
    let forged_read = scene.mallory.craft(
        &scene.bob,
        as_alice,
        Kind::Receipt,
        Payload::ReadUpTo {
            group: None,
            up_to: EnvelopeId::random(),
        },
        true,
    );
    let events = scene.bob.receive(&forged_read);
    assert_alice_intact(&scene, &events);
}
