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
mod tests;
