//! Groups: a random id and a chain of descriptors (name, members, roles), each version
//! signed by an admin of the version before it.
//!
//! The rules live here so relays and clients apply the very same ones:
//! - version 1 (genesis) is signed by a user it names as admin, and the group id is derived
//!   from that creator and a random salt the genesis carries, so nobody else can make a first
//!   version for a group id another user created (squatting it where it is not known yet);
//! - version n+1 names the hash of version n, and is signed by an admin of version n, or by
//!   a member of version n who only removes themselves (leaving);
//! - every version has at least one admin, at most [`MAX_GROUP_MEMBERS`] members, each once;
//! - a version is signed with the author's account key, or, from a linked device (which holds
//!   none), with that device's key and carries the account's certificate for the device.

use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    certs::DeviceCert,
    codec::{self, BoundedVec, DecodeError},
    ids::{Address, GroupId, UserId},
    limits::{MAX_DESCRIPTOR_BYTES, MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN},
};

const DESCRIPTOR_MAGIC: &[u8; 4] = b"TDG1";
/// What a device key signs for a descriptor: distinct from the account key's magic, so one
/// kind of signature is never taken for the other.
const DEVICE_DESCRIPTOR_MAGIC: &[u8; 4] = b"TDGD";
const GROUP_ID_MAGIC: &[u8; 4] = b"TDGI";

/// The id of the group `creator` makes with the random `salt`.
pub fn group_id_for(creator: &UserId, salt: &[u8; 16]) -> GroupId {
    let mut hasher = Sha256::new();
    hasher.update(GROUP_ID_MAGIC);
    hasher.update(creator.as_bytes());
    hasher.update(salt);
    let digest: [u8; 32] = hasher.finalize().into();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    GroupId::from_bytes(id)
}

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// May change the descriptor.
    #[serde(rename = "a")]
    Admin,
    /// May send and receive.
    #[serde(rename = "m")]
    Member,
}

/// One member and their role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupMember {
    /// The user.
    #[serde(rename = "u")]
    pub user: UserId,
    /// Their role.
    #[serde(rename = "r")]
    pub role: Role,
}

/// One version of a group's descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The group.
    #[serde(rename = "g")]
    pub group: GroupId,
    /// 1 for the first version, one more for each change.
    #[serde(rename = "v")]
    pub version: u64,
    /// Hash of the signed previous version (none for version 1).
    #[serde(rename = "p", with = "serde_bytes")]
    pub previous: Option<[u8; 32]>,
    /// The group's name.
    #[serde(rename = "n")]
    pub name: String,
    /// Members, sorted by user id, each once.
    #[serde(rename = "m")]
    pub members: BoundedVec<GroupMember, MAX_GROUP_MEMBERS>,
    /// Who signed this version.
    #[serde(rename = "a")]
    pub author: UserId,
    /// Version 1 only: the salt the group id is derived from, with the creator's id.
    #[serde(
        rename = "c",
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_bytes"
    )]
    pub salt: Option<[u8; 16]>,
}

/// Why a descriptor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// It does not decode or breaks a size bound.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The author's signature does not verify.
    #[error("descriptor signature does not verify")]
    BadSignature,
    /// The signing device's certificate does not verify or is for another account.
    #[error("the signing device's certificate is not the author's")]
    BadDeviceCert,
    /// The author may not make this change.
    #[error("{0} may not make this change")]
    NotAllowed(&'static str),
    /// It does not follow the version it claims to follow (a fork).
    #[error("descriptor does not follow the known version (fork)")]
    Fork,
    /// It is not newer than the known version.
    #[error("descriptor version {got} is not newer than {known}")]
    Stale {
        /// Its version.
        got: u64,
        /// The version already known.
        known: u64,
    },
    /// It skips versions.
    #[error("descriptor version {got} skips versions after {known}")]
    Gap {
        /// Its version.
        got: u64,
        /// The version already known.
        known: u64,
    },
    /// The member list or name is not well formed.
    #[error("invalid descriptor: {0}")]
    Invalid(&'static str),
    /// It is for another group.
    #[error("descriptor is for another group")]
    WrongGroup,
}

/// A descriptor with its author's signature, as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDescriptor {
    /// The descriptor.
    #[serde(rename = "d")]
    pub descriptor: Descriptor,
    /// The author's account-key signature over `"TDG1" || CBOR(descriptor)`, or, with
    /// `device`, that device key's signature over `"TDGD" || CBOR(descriptor)`.
    #[serde(rename = "s", with = "serde_bytes")]
    pub signature: [u8; 64],
    /// Set when a linked device of the author signed: the account's certificate for it.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Box<DeviceCert>>,
}

fn signed_bytes(magic: &[u8; 4], descriptor: &Descriptor) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    codec::encode_into(descriptor, &mut bytes);
    bytes
}

impl Descriptor {
    /// The first version of a new group of `author` (who must be an admin among `members`),
    /// with a fresh salt and the group id derived from it.
    pub fn genesis(
        author: UserId,
        name: String,
        members: BoundedVec<GroupMember, MAX_GROUP_MEMBERS>,
    ) -> Self {
        let salt: [u8; 16] = rand::random();
        Self {
            group: group_id_for(&author, &salt),
            version: 1,
            previous: None,
            name,
            members,
            author,
            salt: Some(salt),
        }
    }

    /// The version after this one, by `author`, with `members` and `name`.
    pub fn successor(
        known: &SignedDescriptor,
        author: UserId,
        name: String,
        members: BoundedVec<GroupMember, MAX_GROUP_MEMBERS>,
    ) -> Self {
        Self {
            group: known.descriptor.group,
            version: known.descriptor.version + 1,
            previous: Some(known.hash()),
            name,
            members,
            author,
            salt: None,
        }
    }

    /// The role of `user`, if a member.
    pub fn role_of(&self, user: &UserId) -> Option<Role> {
        self.members
            .binary_search_by(|member| member.user.cmp(user))
            .ok()
            .map(|index| self.members[index].role)
    }

    /// Whether `user` is a member.
    pub fn is_member(&self, user: &UserId) -> bool {
        self.role_of(user).is_some()
    }

    /// Checks the shape: name length, sorted unique members, at least one admin.
    fn check_shape(&self) -> Result<(), GroupError> {
        if self.name.len() > MAX_GROUP_NAME_LEN {
            return Err(GroupError::Invalid("name too long"));
        }
        if self.version == 0 {
            return Err(GroupError::Invalid("version 0"));
        }
        if (self.version == 1) != self.salt.is_some() {
            return Err(GroupError::Invalid(
                "only the first version carries the salt",
            ));
        }
        if self
            .members
            .windows(2)
            .any(|pair| pair[0].user >= pair[1].user)
        {
            return Err(GroupError::Invalid("members must be sorted and unique"));
        }
        if !self.members.iter().any(|member| member.role == Role::Admin) {
            return Err(GroupError::Invalid("a group needs an admin"));
        }
        Ok(())
    }

    /// Sorts and dedupes a member list (the last role given for a user wins).
    pub fn normalize(members: Vec<GroupMember>) -> Vec<GroupMember> {
        let mut members = members;
        members.reverse();
        members.sort_by_key(|member| member.user);
        members.dedup_by(|later, earlier| later.user == earlier.user);
        members
    }
}

impl SignedDescriptor {
    /// Signs a descriptor with the author's account key.
    pub fn sign(account_key: &SigningKey, descriptor: Descriptor) -> Self {
        let signature = account_key
            .sign(&signed_bytes(DESCRIPTOR_MAGIC, &descriptor))
            .to_bytes();
        Self {
            descriptor,
            signature,
            device: None,
        }
    }

    /// Signs a descriptor with the key of a device `cert` vouches for (a linked device, which
    /// holds no account key).
    pub fn sign_as_device(
        device_key: &SigningKey,
        cert: DeviceCert,
        descriptor: Descriptor,
    ) -> Self {
        let signature = device_key
            .sign(&signed_bytes(DEVICE_DESCRIPTOR_MAGIC, &descriptor))
            .to_bytes();
        Self {
            descriptor,
            signature,
            device: Some(Box::new(cert)),
        }
    }

    fn magic(&self) -> &'static [u8; 4] {
        match self.device {
            Some(_) => DEVICE_DESCRIPTOR_MAGIC,
            None => DESCRIPTOR_MAGIC,
        }
    }

    /// Hash that the next version names as `previous`.
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(signed_bytes(self.magic(), &self.descriptor));
        hasher.update(self.signature);
        hasher.finalize().into()
    }

    /// Whether `sender` may hand this version on as its author: the author's user, and, for
    /// a version a device signed, that very device (so a relay that serves the author
    /// vouches for the device, and a device it revoked cannot change a group).
    pub fn sent_by(&self, sender: &Address) -> bool {
        self.descriptor.author == sender.user
            && self
                .device
                .as_ref()
                .is_none_or(|cert| cert.device == sender.device)
    }

    /// Encodes for an envelope body or storage.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes, checking bounds (not the chain rules).
    pub fn decode(bytes: &[u8]) -> Result<Self, GroupError> {
        Ok(codec::decode(bytes, MAX_DESCRIPTOR_BYTES)?)
    }

    fn verify_signature(&self) -> Result<(), GroupError> {
        let signer = match &self.device {
            None => self.descriptor.author.verifying_key(),
            Some(cert) => {
                if cert.user != self.descriptor.author || cert.verify().is_err() {
                    return Err(GroupError::BadDeviceCert);
                }
                cert.device.verifying_key()
            }
        };
        let key = signer.map_err(|_| GroupError::BadSignature)?;
        key.verify_strict(
            &signed_bytes(self.magic(), &self.descriptor),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| GroupError::BadSignature)
    }

    /// Checks a first version.
    pub fn check_genesis(&self) -> Result<(), GroupError> {
        let descriptor = &self.descriptor;
        descriptor.check_shape()?;
        if descriptor.version != 1 || descriptor.previous.is_some() {
            return Err(GroupError::Invalid("a new group starts at version 1"));
        }
        if descriptor.role_of(&descriptor.author) != Some(Role::Admin) {
            return Err(GroupError::NotAllowed("a creator who is not an admin"));
        }
        if descriptor
            .salt
            .is_none_or(|salt| group_id_for(&descriptor.author, &salt) != descriptor.group)
        {
            return Err(GroupError::WrongGroup);
        }
        self.verify_signature()
    }

    /// Checks that this version may follow `known`.
    pub fn check_successor(&self, known: &SignedDescriptor) -> Result<(), GroupError> {
        let (next, previous) = (&self.descriptor, &known.descriptor);
        if next.group != previous.group {
            return Err(GroupError::WrongGroup);
        }
        if next.version <= previous.version {
            return Err(GroupError::Stale {
                got: next.version,
                known: previous.version,
            });
        }
        if next.version > previous.version + 1 {
            return Err(GroupError::Gap {
                got: next.version,
                known: previous.version,
            });
        }
        if next.previous != Some(known.hash()) {
            return Err(GroupError::Fork);
        }
        next.check_shape()?;
        match previous.role_of(&next.author) {
            Some(Role::Admin) => {}
            Some(Role::Member) if leaves_only(previous, next) => {}
            Some(Role::Member) => {
                return Err(GroupError::NotAllowed("a member who is not an admin"));
            }
            None => return Err(GroupError::NotAllowed("someone who is not a member")),
        }
        self.verify_signature()
    }

    /// Checks a whole chain from version 1.
    pub fn check_chain(chain: &[SignedDescriptor]) -> Result<(), GroupError> {
        let Some(first) = chain.first() else {
            return Err(GroupError::Invalid("empty chain"));
        };
        first.check_genesis()?;
        for pair in chain.windows(2) {
            pair[1].check_successor(&pair[0])?;
        }
        Ok(())
    }
}

/// Whether `next` only removes its author from `previous` (and changes nothing else).
fn leaves_only(previous: &Descriptor, next: &Descriptor) -> bool {
    let remaining: Vec<GroupMember> = previous
        .members
        .iter()
        .copied()
        .filter(|member| member.user != next.author)
        .collect();
    next.name == previous.name && next.members.as_slice() == remaining.as_slice()
}

#[cfg(test)]
mod tests {
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
}
