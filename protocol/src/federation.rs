//! The federation protocol (`/tidings/federation/2`): relays forwarding to each other.
//!
//! The relay that opens a stream sends requests; the other answers each by id. Envelopes
//! are acknowledged only once the receiving relay has committed them.

use serde::{Deserialize, Serialize};

use crate::{
    certs::{DeviceCert, KeyBundle},
    client::SendOutcome,
    codec::{self, BoundedVec, DecodeError},
    devices::SignedDeviceList,
    envelope::RawEnvelope,
    errors::ErrorAnswer,
    group::SignedDescriptor,
    home::HomeRecord,
    ids::{Address, GroupId, UserId},
    limits::{
        MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES, MAX_GROUP_MEMBERS, MAX_PRESENCE_WATCH,
        MAX_PRESENCE_WATCHERS,
    },
    mailbox::MailboxItem,
    presence::PresenceReport,
    profile::SealedProfile,
};

/// Most recipients across the items of one forward.
pub const MAX_FORWARD_RECIPIENTS: usize = 4096;

/// Most descriptor versions in one `Descriptors` request (defined with the other limits,
/// since the client protocol's `GroupVersions` answer shares it).
pub use crate::limits::MAX_DESCRIPTORS_PER_REQUEST;

/// One envelope and the users homed at the receiving relay it is for: the recipient of a
/// direct envelope (stored for the one device its address names), or the group members
/// living there (stored once, referenced from the mailbox of each of their devices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardItem {
    /// The envelope as its sender signed it.
    #[serde(rename = "e")]
    pub envelope: RawEnvelope,
    /// Its recipients at the receiving relay.
    #[serde(rename = "r")]
    pub recipients: BoundedVec<UserId, MAX_GROUP_MEMBERS>,
    /// For a group envelope: the descriptor version the sending relay fanned out by, so the
    /// receiving relay can tell "I am behind" from "not a member" (0 for direct envelopes).
    #[serde(rename = "v")]
    pub group_version: u64,
}

/// Protocol name of the federation protocol, version 2 (accounts of several devices).
pub const FEDERATION_PROTOCOL: &str = "/tidings/federation/2";

/// A frame between two relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederationFrame {
    /// From the relay that opened the stream.
    #[serde(rename = "q")]
    Request {
        /// Unique among this stream's requests in flight.
        #[serde(rename = "i")]
        id: u64,
        /// What is asked.
        #[serde(rename = "b")]
        body: FederationRequest,
    },
    /// The answer to the request with the same id.
    #[serde(rename = "r")]
    Response {
        /// The request's id.
        #[serde(rename = "i")]
        id: u64,
        /// The outcome.
        #[serde(rename = "b")]
        body: Result<FederationResponse, ErrorAnswer>,
    },
}

impl FederationFrame {
    /// Decodes a frame from another relay, checking the bounds no single list captures.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let frame: Self = codec::decode(bytes, MAX_FRAME_BYTES)?;
        match &frame {
            FederationFrame::Request {
                body: FederationRequest::Forward { items, .. },
                ..
            } => {
                let recipients: usize = items.iter().map(|item| item.recipients.len()).sum();
                codec::check_count("forward recipients", recipients, MAX_FORWARD_RECIPIENTS)?;
            }
            FederationFrame::Request {
                body: FederationRequest::Handoff { home, previous, .. },
                ..
            } => {
                home.check_len()?;
                previous.check_len()?;
            }
            FederationFrame::Request {
                body: FederationRequest::StatusForward { post, .. },
                ..
            } => post.check()?,
            _ => {}
        }
        Ok(frame)
    }
}

/// A request from another relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederationRequest {
    /// Store these envelopes for their recipients, homed at the receiving relay. Answered
    /// with one outcome per recipient, items in order. The sending relay must be the home of
    /// every envelope's sender.
    #[serde(rename = "fwd")]
    Forward {
        /// The items.
        #[serde(rename = "i")]
        items: BoundedVec<ForwardItem, MAX_BATCH_ENVELOPES>,
        /// The certificates binding each sending device to its account, one per device.
        #[serde(rename = "c")]
        certs: BoundedVec<DeviceCert, MAX_BATCH_ENVELOPES>,
    },
    /// Which version of a group the receiving relay holds (0: none).
    #[serde(rename = "gver")]
    GroupVersion {
        /// The group.
        #[serde(rename = "g")]
        group: GroupId,
    },
    /// Versions of a group's descriptor following the one the receiving relay holds.
    #[serde(rename = "gdesc")]
    Descriptors {
        /// Consecutive versions, oldest first.
        #[serde(rename = "d")]
        versions: BoundedVec<SignedDescriptor, MAX_DESCRIPTORS_PER_REQUEST>,
    },
    /// Key bundles of several devices of users homed at the receiving relay.
    #[serde(rename = "claims")]
    ClaimBundles {
        /// Whose.
        #[serde(rename = "d")]
        devices: BoundedVec<Address, MAX_BATCH_ENVELOPES>,
        /// The user (homed at the sending relay) who asked; the receiving relay refuses a
        /// claim for someone its home record does not place at the sending relay.
        #[serde(rename = "r")]
        requester: UserId,
    },
    /// Hand out a key bundle of one device of a user homed at the receiving relay.
    #[serde(rename = "claim")]
    Claim {
        /// Whose.
        #[serde(rename = "d")]
        device: Address,
        /// The user (homed at the sending relay) who asked, as for `ClaimBundles`.
        #[serde(rename = "r")]
        requester: UserId,
    },
    /// The user moved to the receiving relay: here is what was waiting for them.
    #[serde(rename = "handoff")]
    Handoff {
        /// The user's home record naming the receiving relay.
        #[serde(rename = "h")]
        home: Box<HomeRecord>,
        /// The user's older record naming the sending relay: proof it was their home.
        #[serde(rename = "p")]
        previous: Box<HomeRecord>,
        /// Their undelivered mailbox entries, oldest first.
        #[serde(rename = "m")]
        items: BoundedVec<MailboxItem, MAX_BATCH_ENVELOPES>,
    },
    /// `watcher` (homed at the sending relay) watches these users homed at the receiving
    /// relay, for the subscription's lifetime unless renewed. Answered with what the
    /// watcher may see of each.
    #[serde(rename = "pwatch")]
    WatchPresence {
        /// Who watches.
        #[serde(rename = "w")]
        watcher: UserId,
        /// Whom.
        #[serde(rename = "u")]
        users: BoundedVec<UserId, MAX_PRESENCE_WATCH>,
    },
    /// A user's presence changed; these watchers (homed at the receiving relay) asked for it.
    #[serde(rename = "pchg")]
    PresenceChanged {
        /// The change.
        #[serde(rename = "r")]
        report: PresenceReport,
        /// Who is told.
        #[serde(rename = "w")]
        watchers: BoundedVec<UserId, MAX_PRESENCE_WATCHERS>,
    },
    /// Pass an ephemeral envelope to the live devices of these users homed at the receiving
    /// relay; never stored.
    #[serde(rename = "eph")]
    Ephemeral {
        /// The envelope.
        #[serde(rename = "e")]
        envelope: RawEnvelope,
        /// The certificate binding the sending device to its account.
        #[serde(rename = "c")]
        cert: DeviceCert,
        /// Its recipients there.
        #[serde(rename = "u")]
        recipients: BoundedVec<UserId, MAX_FORWARD_RECIPIENTS>,
    },
    /// The signed device list of a user homed at the receiving relay.
    #[serde(rename = "dlget")]
    DeviceList {
        /// Whose.
        #[serde(rename = "u")]
        user: UserId,
    },
    /// The sealed profile of a user homed at the receiving relay.
    #[serde(rename = "profget")]
    Profile {
        /// Whose.
        #[serde(rename = "u")]
        user: UserId,
    },
    /// Store a status for the members of its audience homed at the receiving relay (the
    /// post's audience names only them) until it expires. The sending relay must be the
    /// poster's home.
    #[serde(rename = "stfwd")]
    StatusForward {
        /// The posting device.
        #[serde(rename = "f")]
        poster: Address,
        /// The status.
        #[serde(rename = "p")]
        post: Box<crate::status::StatusPost>,
    },
}

/// A successful answer from another relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederationResponse {
    /// One outcome per forwarded recipient or handed-off item, in order.
    #[serde(rename = "stored")]
    Stored {
        /// The outcomes.
        #[serde(rename = "o")]
        outcomes: BoundedVec<SendOutcome, MAX_FORWARD_RECIPIENTS>,
    },
    /// The claimed bundle (the claiming client verifies it).
    #[serde(rename = "bundle")]
    Bundle(Box<KeyBundle>),
    /// One bundle or refusal per asked user, in order.
    #[serde(rename = "bundles")]
    Bundles {
        /// The answers.
        #[serde(rename = "b")]
        bundles: BoundedVec<Result<KeyBundle, ErrorAnswer>, MAX_BATCH_ENVELOPES>,
    },
    /// The version of the group held (0: none).
    #[serde(rename = "gver")]
    GroupVersion(u64),
    /// Descriptor versions were checked and stored.
    #[serde(rename = "gdesc")]
    DescriptorsStored,
    /// What the watcher may see of each user asked about, in order.
    #[serde(rename = "pwatch")]
    Presence {
        /// The reports.
        #[serde(rename = "r")]
        reports: BoundedVec<PresenceReport, MAX_PRESENCE_WATCH>,
    },
    /// The presence change was passed on.
    #[serde(rename = "pchg")]
    PresenceTaken,
    /// How many live devices the ephemeral envelope reached, counting only recipients who
    /// let its sender see their presence (0 for the others, online or not).
    #[serde(rename = "eph")]
    EphemeralPassed {
        /// Devices reached.
        #[serde(rename = "n")]
        reached: u32,
    },
    /// The device list held for the asked user (`None`: none published).
    #[serde(rename = "dl")]
    DeviceList(Option<Box<SignedDeviceList>>),
    /// The sealed profile held for the asked user (`None`: none stored).
    #[serde(rename = "prof")]
    Profile(Option<Box<SealedProfile>>),
    /// The forwarded status is stored (`false`: it was already).
    #[serde(rename = "stfwd")]
    StatusStored(bool),
}
