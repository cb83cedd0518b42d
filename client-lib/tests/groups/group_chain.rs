//! Group takeover on the device: every descriptor version must chain from the one held, so a
//! removed member's well-signed version that skips ahead, a version by a non-admin, and a
//! first version squatting someone else's group id are all refused.

use tempfile::TempDir;
use tidings_client::{Event, store::ClientStore};
use tidings_keys::Identity;
use tidings_protocol::{
    BoundedVec, Envelope, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient, UserId,
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    limits::MAX_GROUP_MEMBERS,
    now_ms,
};

fn members(list: &[(UserId, Role)]) -> BoundedVec<GroupMember, MAX_GROUP_MEMBERS> {
    let list = list
        .iter()
        .map(|&(user, role)| GroupMember { user, role })
        .collect();
    BoundedVec::new(Descriptor::normalize(list)).unwrap()
}

fn change_envelope(author: &Identity, change: &SignedDescriptor) -> RawEnvelope {
    Envelope {
        id: EnvelopeId::random(),
        sender: author.address(),
        recipient: Recipient::Group(change.descriptor.group),
        sent_at_ms: now_ms(),
        kind: Kind::GroupControl,
        body: change.encode(),
        blobs: Default::default(),
    }
    .sign(author.device_key())
}

struct Bob {
    identity: Identity,
    store: ClientStore,
    _dir: TempDir,
}

impl Bob {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::generate();
        Self {
            store: ClientStore::open(dir.path(), identity.store_key()).unwrap(),
            identity,
            _dir: dir,
        }
    }

    fn receive(&self, raw: &RawEnvelope) -> Vec<Event> {
        let envelope = raw.open().unwrap();
        self.store
            .receive(&self.identity, &[(envelope, raw.clone())], &[])
            .unwrap()
            .events
    }

    fn version(&self, group: &GroupId) -> Option<u64> {
        self.store
            .group(group)
            .unwrap()
            .map(|known| known.descriptor.version)
    }
}

#[test]
fn a_removed_member_cannot_make_the_device_skip_to_her_version() {
    let alice = Identity::generate();
    let mallory = Identity::generate();
    let bob = Bob::new();
    let (a, b, m) = (alice.user_id(), bob.identity.user_id(), mallory.user_id());
    let v1 = SignedDescriptor::sign(
        alice.account_key(),
        Descriptor::genesis(
            a,
            "climbers".into(),
            members(&[(a, Role::Admin), (b, Role::Member), (m, Role::Member)]),
        ),
    );
    let group = v1.descriptor.group;
    let v2 = SignedDescriptor::sign(
        alice.account_key(),
        Descriptor::successor(
            &v1,
            a,
            "climbers".into(),
            members(&[(a, Role::Admin), (b, Role::Member)]),
        ),
    );
    bob.receive(&change_envelope(&alice, &v1));
    bob.receive(&change_envelope(&alice, &v2));
    assert_eq!(bob.version(&group), Some(2));

    // Version 4, well signed by Mallory, skipping what Bob holds.
    let skip = SignedDescriptor::sign(
        mallory.account_key(),
        Descriptor {
            group,
            version: 4,
            previous: Some([1; 32]),
            name: "mine now".into(),
            members: members(&[(m, Role::Admin), (b, Role::Member)]),
            author: m,
            salt: None,
        },
    );
    // Version 3 chained onto version 2, but she is no member of it.
    let follow = SignedDescriptor::sign(
        mallory.account_key(),
        Descriptor::successor(
            &v2,
            m,
            "mine now".into(),
            members(&[(m, Role::Admin), (b, Role::Member)]),
        ),
    );
    for forged in [&skip, &follow] {
        let events = bob.receive(&change_envelope(&mallory, forged));
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, Event::GroupChanged { .. })),
            "{events:?}"
        );
        assert_eq!(bob.version(&group), Some(2));
    }
    // Bob's next sending key goes to Alice's device only.
    crate::common::knows(&bob.store, &alice);
    crate::common::knows(&bob.store, &bob.identity);
    crate::common::knows(&bob.store, &mallory);
    let plan = bob
        .store
        .plan_group_key(&bob.identity, &group)
        .unwrap()
        .unwrap();
    assert_eq!(plan.need, [alice.address()]);
}

#[test]
fn a_first_version_for_someone_elses_group_id_is_refused() {
    let alice = Identity::generate();
    let mallory = Identity::generate();
    let bob = Bob::new();
    let (a, b, m) = (alice.user_id(), bob.identity.user_id(), mallory.user_id());
    let real = Descriptor::genesis(
        a,
        "climbers".into(),
        members(&[(a, Role::Admin), (b, Role::Member)]),
    );
    let squat = SignedDescriptor::sign(
        mallory.account_key(),
        Descriptor {
            author: m,
            members: members(&[(m, Role::Admin), (b, Role::Member)]),
            ..real.clone()
        },
    );
    bob.receive(&change_envelope(&mallory, &squat));
    assert_eq!(bob.version(&real.group), None);
    // Alice's own first version is then taken.
    let v1 = SignedDescriptor::sign(alice.account_key(), real);
    bob.receive(&change_envelope(&alice, &v1));
    assert_eq!(bob.version(&v1.descriptor.group), Some(1));
}
