//! The chain rules on hand-made descriptors: who may change what, and what a forged or
//! misplaced version gets.

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn user(seed: u8) -> UserId {
    UserId::from(&key(seed).verifying_key())
}

fn descriptor(
    version: u64,
    previous: Option<[u8; 32]>,
    author: u8,
    members: &[(u8, Role)],
) -> Descriptor {
    let members = Descriptor::normalize(
        members
            .iter()
            .map(|(seed, role)| GroupMember {
                user: user(*seed),
                role: *role,
            })
            .collect(),
    );
    Descriptor {
        group: group_id_for(&user(1), &SALT),
        version,
        previous,
        name: "friends".into(),
        members: BoundedVec::new(members).unwrap_or_default(),
        author: user(author),
        salt: (version == 1).then_some(SALT),
    }
}

const SALT: [u8; 16] = [5; 16];

fn genesis() -> SignedDescriptor {
    SignedDescriptor::sign(
        &key(1),
        descriptor(
            1,
            None,
            1,
            &[(1, Role::Admin), (2, Role::Member), (3, Role::Member)],
        ),
    )
}

#[test]
fn an_admin_may_change_the_group_and_the_chain_holds() {
    let v1 = genesis();
    assert_eq!(v1.check_genesis(), Ok(()));
    let v2 = SignedDescriptor::sign(
        &key(1),
        descriptor(2, Some(v1.hash()), 1, &[(1, Role::Admin), (2, Role::Admin)]),
    );
    assert_eq!(v2.check_successor(&v1), Ok(()));
    assert_eq!(SignedDescriptor::check_chain(&[v1, v2]), Ok(()));
}

#[test]
fn nobody_can_make_a_first_version_for_a_group_id_another_user_created() {
    assert_eq!(genesis().check_genesis(), Ok(()));
    // Mallory signs a genesis for Alice's group id, naming herself admin.
    let squat = SignedDescriptor::sign(
        &key(7),
        descriptor(1, None, 7, &[(7, Role::Admin), (2, Role::Member)]),
    );
    assert_eq!(squat.check_genesis(), Err(GroupError::WrongGroup));
    // ... or with a salt of her own: the id no longer matches.
    let mut other_salt = descriptor(1, None, 7, &[(7, Role::Admin)]);
    other_salt.salt = Some([6; 16]);
    let other_salt = SignedDescriptor::sign(&key(7), other_salt);
    assert_eq!(other_salt.check_genesis(), Err(GroupError::WrongGroup));
    // A fresh genesis derives its own id.
    let mine = Descriptor::genesis(
        user(7),
        "mine".into(),
        BoundedVec::new(vec![GroupMember {
            user: user(7),
            role: Role::Admin,
        }])
        .unwrap(),
    );
    assert_eq!(
        SignedDescriptor::sign(&key(7), mine).check_genesis(),
        Ok(())
    );
}

#[test]
fn members_may_only_leave_and_strangers_may_do_nothing() {
    let v1 = genesis();
    let leave = SignedDescriptor::sign(
        &key(2),
        descriptor(
            2,
            Some(v1.hash()),
            2,
            &[(1, Role::Admin), (3, Role::Member)],
        ),
    );
    assert_eq!(leave.check_successor(&v1), Ok(()));
    let coup = SignedDescriptor::sign(
        &key(2),
        descriptor(
            2,
            Some(v1.hash()),
            2,
            &[(2, Role::Admin), (3, Role::Member)],
        ),
    );
    assert_eq!(
        coup.check_successor(&v1),
        Err(GroupError::NotAllowed("a member who is not an admin"))
    );
    let stranger = SignedDescriptor::sign(
        &key(7),
        descriptor(2, Some(v1.hash()), 7, &[(1, Role::Admin), (7, Role::Admin)]),
    );
    assert_eq!(
        stranger.check_successor(&v1),
        Err(GroupError::NotAllowed("someone who is not a member"))
    );
}

#[test]
fn forks_gaps_stale_versions_and_forgeries_are_refused() {
    let v1 = genesis();
    let fork = SignedDescriptor::sign(
        &key(1),
        descriptor(2, Some([0; 32]), 1, &[(1, Role::Admin)]),
    );
    assert_eq!(fork.check_successor(&v1), Err(GroupError::Fork));
    let gap = SignedDescriptor::sign(
        &key(1),
        descriptor(3, Some(v1.hash()), 1, &[(1, Role::Admin)]),
    );
    assert_eq!(
        gap.check_successor(&v1),
        Err(GroupError::Gap { got: 3, known: 1 })
    );
    assert_eq!(
        v1.check_successor(&v1),
        Err(GroupError::Stale { got: 1, known: 1 })
    );
    let mut forged = SignedDescriptor::sign(
        &key(1),
        descriptor(2, Some(v1.hash()), 1, &[(1, Role::Admin)]),
    );
    forged.descriptor.name = "mine now".into();
    assert_eq!(forged.check_successor(&v1), Err(GroupError::BadSignature));
    let no_admin = SignedDescriptor::sign(
        &key(1),
        descriptor(2, Some(v1.hash()), 1, &[(2, Role::Member)]),
    );
    assert_eq!(
        no_admin.check_successor(&v1),
        Err(GroupError::Invalid("a group needs an admin"))
    );
}

#[test]
fn a_full_group_fits_in_one_envelope() {
    let members: Vec<(u8, Role)> = Vec::new();
    let mut big = descriptor(1, None, 1, &members);
    let list: Vec<GroupMember> = (0..MAX_GROUP_MEMBERS)
        .map(|index| {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(index as u64).to_be_bytes());
            GroupMember {
                user: UserId::from_bytes(bytes),
                role: Role::Admin,
            }
        })
        .collect();
    big.members = BoundedVec::new(Descriptor::normalize(list)).unwrap();
    big.name = "x".repeat(MAX_GROUP_NAME_LEN);
    let signed = SignedDescriptor::sign_as_device(&key(40), cert(1, 40), big);
    let bytes = signed.encode();
    assert!(bytes.len() <= MAX_DESCRIPTOR_BYTES, "{} bytes", bytes.len());
    assert_eq!(SignedDescriptor::decode(&bytes), Ok(signed));
}

fn cert(account: u8, device: u8) -> DeviceCert {
    DeviceCert::issue(
        &key(account),
        crate::ids::DeviceId::from(&key(device).verifying_key()),
        1,
    )
}

fn address(account: u8, device: u8) -> Address {
    cert(account, device).address()
}

#[test]
fn a_linked_device_of_an_admin_may_create_and_change_a_group() {
    let first = SignedDescriptor::sign_as_device(
        &key(41),
        cert(1, 41),
        descriptor(1, None, 1, &[(1, Role::Admin), (2, Role::Member)]),
    );
    assert_eq!(first.check_genesis(), Ok(()));
    let v2 = SignedDescriptor::sign(
        &key(1),
        descriptor(2, Some(first.hash()), 1, &[(1, Role::Admin)]),
    );
    assert_eq!(SignedDescriptor::check_chain(&[first.clone(), v2]), Ok(()));
    assert!(first.sent_by(&address(1, 41)));
    // Only the device that signed may hand it on; an account-signed version, any device.
    assert!(!first.sent_by(&address(1, 42)));
    assert!(!first.sent_by(&address(2, 41)));
    assert!(genesis().sent_by(&address(1, 42)));
}

#[test]
fn a_device_signature_needs_the_authors_certificate_for_that_device() {
    let change = descriptor(1, None, 1, &[(1, Role::Admin)]);
    // A device of Mallory (account 9) signs as Alice (author 1).
    let foreign = SignedDescriptor::sign_as_device(&key(41), cert(9, 41), change.clone());
    assert_eq!(foreign.check_genesis(), Err(GroupError::BadDeviceCert));
    // Alice's certificate for device 41, but device 42 made the signature.
    let swapped = SignedDescriptor::sign_as_device(&key(42), cert(1, 41), change.clone());
    assert_eq!(swapped.check_genesis(), Err(GroupError::BadSignature));
    // A forged certificate.
    let mut forged_cert = cert(1, 41);
    forged_cert.issued_at_ms += 1;
    let forged = SignedDescriptor::sign_as_device(&key(41), forged_cert, change.clone());
    assert_eq!(forged.check_genesis(), Err(GroupError::BadDeviceCert));
    // An account signature cannot be passed off as a device signature, nor back.
    let mut relabeled = SignedDescriptor::sign(&key(1), change.clone());
    relabeled.device = Some(Box::new(cert(1, 41)));
    assert_eq!(relabeled.check_genesis(), Err(GroupError::BadSignature));
    let mut stripped = SignedDescriptor::sign_as_device(&key(41), cert(1, 41), change);
    stripped.device = None;
    assert_eq!(stripped.check_genesis(), Err(GroupError::BadSignature));
}
