//! The device's store against hostile input: an envelope under someone else's id, group
//! messages that wait for a key that never comes, and the file's permissions.

use std::os::unix::fs::PermissionsExt;

use tempfile::TempDir;
use tidings_client::{
    Event,
    store::{ClientStore, Conversation, groups::MAX_PENDING_PER_SENDER},
};
use tidings_keys::Identity;
use tidings_protocol::{
    BoundedVec, Envelope, EnvelopeId, KeyBundle, Kind, RawEnvelope, Recipient,
    content::MegolmBody,
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    now_ms,
};

struct Device {
    identity: Identity,
    store: ClientStore,
    dir: TempDir,
}

impl Device {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::generate();
        Self {
            store: ClientStore::open(dir.path(), identity.store_key()).unwrap(),
            identity,
            dir,
        }
    }

    /// Takes `other`'s signed device list, as fetching it would.
    fn knows(&self, other: &Identity) {
        crate::common::knows(&self.store, other);
    }

    fn receive(&self, raws: &[RawEnvelope]) -> Vec<Event> {
        let envelopes: Vec<_> = raws
            .iter()
            .map(|raw| (raw.open().unwrap(), raw.clone()))
            .collect();
        self.store
            .receive(&self.identity, &envelopes, &[])
            .unwrap()
            .events
    }
}

fn signed(
    from: &Identity,
    id: EnvelopeId,
    to: Recipient,
    kind: Kind,
    body: Vec<u8>,
) -> RawEnvelope {
    Envelope {
        id,
        sender: from.address(),
        recipient: to,
        sent_at_ms: now_ms(),
        kind,
        body,
        blobs: Default::default(),
    }
    .sign(from.device_key())
}

#[test]
fn an_envelope_under_someone_elses_id_does_not_make_the_real_one_a_duplicate() {
    let alice = Device::new();
    let bob = Device::new();
    let mallory = Identity::generate();
    let upload = bob
        .store
        .keys_to_publish(&bob.identity, 1)
        .unwrap()
        .unwrap();
    let bundle = KeyBundle {
        cert: bob.identity.cert().clone(),
        identity: upload.identity.unwrap(),
        prekey: upload.one_time_keys[0].clone(),
    };
    let (a, b) = (alice.identity.user_id(), bob.identity.user_id());
    bob.knows(&alice.identity);
    bob.knows(&mallory);
    alice
        .store
        .install_outbound(&alice.identity, &bob.identity.address(), &bundle)
        .unwrap();
    let records = alice
        .store
        .queue_texts(a, Conversation::Direct(b), vec!["the real one".into()])
        .unwrap();
    let (seq, _) = alice.store.pending(1).unwrap().pop().unwrap();
    let real = alice
        .store
        .seal(&alice.identity, seq, vec![bob.identity.address()])
        .unwrap()
        .remove(0)
        .envelope;
    // Mallory learned the id and got junk under it to Bob first.
    let junk = signed(
        &mallory,
        records[0].id,
        Recipient::Direct(bob.identity.address()),
        Kind::Message,
        b"junk".to_vec(),
    );
    let events = bob.receive(&[junk]);
    assert!(
        matches!(&events[..], [Event::Undecryptable { .. }]),
        "{events:?}"
    );
    let events = bob.receive(&[real]);
    assert!(
        matches!(&events[..], [Event::Message(record)] if record.text == "the real one" && record.peer == a),
        "{events:?}"
    );
    assert_eq!(
        bob.store.message(&records[0].id).unwrap().unwrap().text,
        "the real one"
    );
}

#[test]
fn group_messages_waiting_for_a_key_are_kept_only_for_members_and_only_so_many() {
    let bob = Device::new();
    let alice = Identity::generate();
    let stranger = Identity::generate();
    let members = vec![
        GroupMember {
            user: alice.user_id(),
            role: Role::Admin,
        },
        GroupMember {
            user: bob.identity.user_id(),
            role: Role::Member,
        },
    ];
    let v1 = SignedDescriptor::sign(
        alice.account_key(),
        Descriptor::genesis(
            alice.user_id(),
            "g".into(),
            BoundedVec::new(Descriptor::normalize(members)).unwrap(),
        ),
    );
    let group = v1.descriptor.group;
    bob.receive(&[signed(
        &alice,
        EnvelopeId::random(),
        Recipient::Group(group),
        Kind::GroupControl,
        v1.encode(),
    )]);
    let waiting = |from: &Identity| {
        let body = MegolmBody {
            session_id: "no key yet".into(),
            ciphertext: vec![1; 32],
        };
        signed(
            from,
            EnvelopeId::random(),
            Recipient::Group(group),
            Kind::Message,
            body.encode(),
        )
    };
    // A stranger's are not kept at all.
    let events = bob.receive(&[waiting(&stranger)]);
    assert!(
        matches!(&events[..], [Event::Undecryptable { .. }]),
        "{events:?}"
    );
    // A member's wait, up to the bound; beyond it they fail.
    let batch: Vec<RawEnvelope> = (0..MAX_PENDING_PER_SENDER)
        .map(|_| waiting(&alice))
        .collect();
    assert!(bob.receive(&batch).is_empty());
    let events = bob.receive(&[waiting(&alice)]);
    assert!(
        matches!(&events[..], [Event::Undecryptable { .. }]),
        "{events:?}"
    );
}

#[test]
fn the_history_file_is_readable_by_its_owner_only() {
    let device = Device::new();
    let path = device.dir.path().join(tidings_client::store::STORE_FILE);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // An existing file with a looser mode is tightened when opened again.
    drop(device.store);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _store = ClientStore::open(device.dir.path(), device.identity.store_key()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}
