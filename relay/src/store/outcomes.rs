//! What goes into the store and what comes out of each write: the typed items and outcomes
//! of the store's operations.

use bytes::Bytes;
use tidings_protocol::{
    DeviceId, EnvelopeId, GroupId, KeyBundle, UserId,
    group::{GroupError, SignedDescriptor},
};

/// Result of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The device is registered (`new` is false if it already was).
    Registered {
        /// Whether this call created the registration.
        new: bool,
        /// Unclaimed one-time keys held for the device.
        one_time_keys: u32,
    },
    /// The device list given names more devices than the relay allows.
    DeviceLimit {
        /// The configured cap (`limits.max_devices_per_account`).
        max: u64,
    },
    /// The device is registered under another account.
    DeviceTaken,
    /// A new account, and the relay holds as many as it may.
    AccountLimit,
    /// The held device list does not name the device (removed, or never added), or the
    /// account has devices here and no list to add this one with.
    Revoked,
    /// The device list given is not newer than the held one.
    StaleList {
        /// The version of the held list.
        held: u64,
    },
    /// The device list given may not follow the held one for another reason.
    ListRefused(tidings_protocol::DeviceListError),
}

/// Result of a key upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysOutcome {
    /// Stored; the count of unclaimed one-time keys now held.
    Stored {
        /// Unclaimed one-time keys held for the device.
        one_time_keys: u32,
    },
    /// The device is not registered.
    NotRegistered,
}

/// Result of a key-bundle claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A bundle, with a one-time key removed from the store (or the fallback key).
    Bundle(Box<KeyBundle>),
    /// No such user here.
    UnknownUser,
    /// The user is homed here but has no such registered device.
    UnknownDevice,
    /// The user has not uploaded an identity key and a prekey.
    NoKeys,
}

/// Result of recording a home record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetHomeOutcome {
    /// Stored; `moved_away` if it names another relay.
    Stored {
        /// The user's home is now elsewhere.
        moved_away: bool,
    },
    /// A record with a higher sequence number is already known.
    Stale {
        /// Its sequence number.
        known: u64,
    },
    /// The user is not registered here.
    NotRegistered,
}

/// An envelope to store: in a local mailbox, or in the outbox for a user homed elsewhere.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    /// Its id, for dedupe.
    pub id: EnvelopeId,
    /// Who sent it.
    pub sender: UserId,
    /// Who it is for.
    pub recipient: UserId,
    /// Which of the recipient's devices (direct envelopes; `None` for an outbox entry of a
    /// group envelope, which reaches every device at the member's home).
    pub device: Option<DeviceId>,
    /// The wire bytes, stored as they are.
    pub bytes: Bytes,
}

/// A group envelope from a local member.
#[derive(Debug, Clone)]
pub struct GroupEnvelope {
    /// Its id.
    pub id: EnvelopeId,
    /// The sending member.
    pub sender: UserId,
    /// The sending device (it gets no copy; the sender's other devices do).
    pub sender_device: DeviceId,
    /// The group.
    pub group: GroupId,
    /// The wire bytes.
    pub bytes: Bytes,
    /// The descriptor change it carries (group control envelopes).
    pub change: Option<SignedDescriptor>,
}

/// What became of a [`GroupEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutcome {
    /// Stored for `local` member devices here and queued for `queued` members elsewhere.
    Accepted {
        /// Mailbox entries made here (one per member device).
        local: usize,
        /// Members homed at other relays.
        queued: usize,
    },
    /// Stored before (a retry).
    Duplicate,
    /// The id was used before for other content.
    IdReused,
    /// No descriptor of the group is held here.
    UnknownGroup,
    /// The sender is not a member.
    NotMember,
    /// The descriptor change breaks the rules.
    BadDescriptor(GroupError),
    /// The outbox is at its quota.
    OutboxFull,
    /// The sender's envelopes hold their whole share of the outbox.
    OutboxShareFull,
}

/// A group envelope another relay forwarded for members homed here.
#[derive(Debug, Clone)]
pub struct GroupDelivery {
    /// Its id.
    pub id: EnvelopeId,
    /// The sending member.
    pub sender: UserId,
    /// The group.
    pub group: GroupId,
    /// The relay that forwarded it (charged for the mailbox entries it creates here).
    pub origin: libp2p::PeerId,
    /// The descriptor version the sending relay fanned out by.
    pub version: u64,
    /// The descriptor change it carries, if any: it must chain onto the versions held here,
    /// and it also reaches the members it removes.
    pub change: Option<SignedDescriptor>,
    /// The wire bytes.
    pub bytes: Bytes,
    /// Members homed here it is for.
    pub recipients: Vec<UserId>,
}

/// What became of descriptor versions sent by another relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorsOutcome {
    /// Stored; the version now held.
    Stored {
        /// The newest version held.
        version: u64,
    },
    /// A version breaks the rules.
    Rejected(GroupError),
    /// The group is not held here and no version sent names a member living here.
    NoMemberHere,
}

/// One entry a user's previous home relay hands on.
#[derive(Debug, Clone)]
pub enum HandoffItem {
    /// An envelope (deduped by id).
    Envelope(NewEnvelope),
    /// A bounce notice, as stored.
    Bounce(Bytes),
}

/// Who hands envelopes to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A local device: envelopes for users elsewhere go to the outbox.
    Client,
    /// Another relay: only envelopes for users homed here are taken, within that relay's
    /// share of the mailboxes.
    Federation(libp2p::PeerId),
}

/// What became of one [`NewEnvelope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored in a local mailbox under this sequence number.
    Accepted {
        /// Sequence number in the recipient's mailbox.
        seq: u64,
    },
    /// Stored in the outbox for forwarding, under this outbox sequence number.
    Queued {
        /// Outbox sequence number.
        seq: u64,
    },
    /// This id was stored before with the same content.
    Duplicate,
    /// This id was stored before with different content.
    IdReused,
    /// The recipient's home is not this relay (for envelopes from other relays).
    NotHere,
    /// The recipient has no such device registered here.
    UnknownDevice,
    /// The recipient's mailbox is at its quota.
    MailboxFull,
    /// The forwarding relay's envelopes hold their whole share of the mailboxes here.
    RelayShareFull,
    /// The outbox is at its quota.
    OutboxFull,
    /// The sender's envelopes hold their whole share of the outbox.
    OutboxShareFull,
    /// The sender or the recipient is not a member of the group.
    NotMember,
    /// This relay holds an older version of the group than the sender fanned out by.
    GroupOutOfDate,
    /// The group change does not chain onto the versions held here (forged, forked).
    BadDescriptor,
    /// The operator suspended the recipient's account.
    Suspended,
    /// The operator removed the recipient (their last home record named this relay).
    Removed,
}
