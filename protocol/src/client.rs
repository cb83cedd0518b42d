//! The client protocol (`/tidings/client/2`): frames between a device and its home relay.
//!
//! A device opens one long-lived stream and sends [`ClientFrame`]s; the relay answers with
//! [`RelayFrame`]s: a response per request (matched by request id), and mailbox pushes.

use serde::{Deserialize, Serialize};

use crate::{
    certs::{DeviceCert, IdentityKey, KeyBundle, SignedPreKey},
    codec::{self, BoundedVec, DecodeError},
    devices::SignedDeviceList,
    envelope::RawEnvelope,
    errors::ErrorAnswer,
    group::SignedDescriptor,
    home::HomeRecord,
    ids::{Address, DeviceId, GroupId, UserId},
    limits::{
        MAX_BATCH_ENVELOPES, MAX_CARD_ADDRS, MAX_DESCRIPTORS_PER_REQUEST, MAX_DEVICE_LIST_BYTES,
        MAX_DEVICES_PER_ACCOUNT, MAX_FRAME_BYTES, MAX_INVITE_LEN, MAX_LINK_PACKAGE_BYTES,
        MAX_ONE_TIME_KEYS_PER_UPLOAD, MAX_PRESENCE_ALLOWED, MAX_PRESENCE_WATCH,
    },
    mailbox::MailboxItem,
    presence::{PresenceReport, Visibility},
    profile::SealedProfile,
    push::PushSubscription,
};

/// Protocol name of the client protocol, version 2 (accounts of several devices).
pub const CLIENT_PROTOCOL: &str = "/tidings/client/2";

/// Protocol name of the first client protocol (one device per account). A relay speaking
/// version 2 answers a stream of version 1 with one [`RelayFrame::Fatal`] carrying
/// [`crate::ErrorCode::UpgradeRequired`], which a version-1 client decodes and shows.
pub const CLIENT_PROTOCOL_V1: &str = "/tidings/client/1";

/// A batch of envelopes, bounded by [`MAX_BATCH_ENVELOPES`].
pub type EnvelopeBatch = BoundedVec<RawEnvelope, MAX_BATCH_ENVELOPES>;

/// What a device sends to its relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// A request; the relay answers with a [`RelayFrame::Response`] carrying the same id.
    #[serde(rename = "q")]
    Request {
        /// Chosen by the client, unique among its requests in flight.
        #[serde(rename = "i")]
        id: u64,
        /// What is asked.
        #[serde(rename = "b")]
        body: Request,
    },
    /// Everything in the mailbox up to and including `up_to` is safely stored by the device
    /// and may be deleted. No answer.
    #[serde(rename = "a")]
    Ack {
        /// Mailbox sequence number.
        #[serde(rename = "s")]
        up_to: u64,
    },
    /// The device is alive (sent every `heartbeat_ms` while subscribed). No answer.
    #[serde(rename = "p")]
    Ping,
}

impl ClientFrame {
    /// Decodes a frame received from a device.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let frame: Self = codec::decode(bytes, MAX_FRAME_BYTES)?;
        frame.validate()?;
        Ok(frame)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            ClientFrame::Request {
                body: Request::Register(register),
                ..
            } => {
                if register
                    .invite
                    .as_ref()
                    .is_some_and(|invite| invite.len() > MAX_INVITE_LEN)
                {
                    return Err(DecodeError::Invalid {
                        field: "invite",
                        reason: "too long",
                    });
                }
                match &register.list {
                    Some(list) => check_device_list_len(list),
                    None => Ok(()),
                }
            }
            ClientFrame::Request {
                body: Request::PublishHome(record),
                ..
            } => record.check_len(),
            ClientFrame::Request {
                body: Request::PublishDeviceList { list },
                ..
            } => check_device_list_len(list),
            ClientFrame::Request {
                body: Request::PutLink { package, .. },
                ..
            } => codec::check_count("link package bytes", package.len(), MAX_LINK_PACKAGE_BYTES),
            ClientFrame::Request {
                body:
                    Request::SetPush {
                        subscription: Some(subscription),
                    },
                ..
            } => subscription
                .validate()
                .map_err(|error| DecodeError::Invalid {
                    field: "push subscription",
                    reason: error.reason(),
                }),
            ClientFrame::Request {
                body: Request::PutProfile { profile },
                ..
            } => profile.check(),
            ClientFrame::Request {
                body: Request::PostStatus(post),
                ..
            } => post.check(),
            _ => Ok(()),
        }
    }
}

fn check_device_list_len(list: &SignedDeviceList) -> Result<(), DecodeError> {
    if list.encode().len() > MAX_DEVICE_LIST_BYTES {
        return Err(DecodeError::Invalid {
            field: "device list",
            reason: "longer than MAX_DEVICE_LIST_BYTES",
        });
    }
    Ok(())
}

/// A request from a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Register this device (the Noise identity of the stream) under an account.
    #[serde(rename = "reg")]
    Register(Box<Register>),
    /// Publish Olm keys so others can open sessions to this device.
    #[serde(rename = "keys")]
    UploadKeys(Box<UploadKeys>),
    /// Publish this user's signed home record. Naming this relay, it is stored and put in the
    /// DHT; naming another relay (the user moved), this relay hands everything waiting for
    /// the user on to the new home.
    #[serde(rename = "home")]
    PublishHome(Box<HomeRecord>),
    /// Fetch a key bundle of one device of another user (on any relay), consuming one of its
    /// one-time keys.
    #[serde(rename = "claim")]
    ClaimBundle {
        /// Whose bundle: the user and which of their devices.
        #[serde(rename = "d")]
        device: Address,
    },
    /// Fetch key bundles of several devices at once (one answer each, in order).
    #[serde(rename = "claims")]
    ClaimBundles {
        /// Whose.
        #[serde(rename = "d")]
        devices: BoundedVec<Address, MAX_BATCH_ENVELOPES>,
    },
    /// Store and forward envelopes. Each is answered on its own.
    #[serde(rename = "send")]
    Send {
        /// The envelopes, signed by this device.
        #[serde(rename = "e")]
        envelopes: EnvelopeBatch,
    },
    /// Start receiving the mailbox: everything after the last acked sequence number, then
    /// new envelopes as they arrive. A subscribed device counts as online.
    #[serde(rename = "sub")]
    Subscribe,
    /// Choose who may see this user's presence and last seen.
    #[serde(rename = "pset")]
    SetPresence {
        /// Everyone, the `allowed` list, or nobody.
        #[serde(rename = "v")]
        visibility: Visibility,
        /// Who may see it when `visibility` is `Contacts`.
        #[serde(rename = "a")]
        allowed: BoundedVec<UserId, MAX_PRESENCE_ALLOWED>,
    },
    /// Watch the presence of these users (replacing this stream's earlier watch): answered
    /// with their current state, then changes come as [`RelayFrame::Presence`].
    #[serde(rename = "pwatch")]
    WatchPresence {
        /// Whose.
        #[serde(rename = "u")]
        users: BoundedVec<UserId, MAX_PRESENCE_WATCH>,
    },
    /// Pass an ephemeral envelope (a typing notice) to the recipient's live devices; never
    /// stored, dropped if none is online.
    #[serde(rename = "eph")]
    Ephemeral {
        /// The envelope, signed by this device.
        #[serde(rename = "e")]
        envelope: RawEnvelope,
    },
    /// Versions of a group's descriptor from `from` on (oldest first, at most
    /// [`MAX_DESCRIPTORS_PER_REQUEST`]), for a member whose device missed some: every change
    /// must chain from the version the device holds.
    #[serde(rename = "gvers")]
    GroupVersions {
        /// The group.
        #[serde(rename = "g")]
        group: GroupId,
        /// The first version wanted.
        #[serde(rename = "f")]
        from: u64,
    },
    /// Store this user's signed device list at its home relay (this one), replacing the held
    /// list only with a newer version. Answered with the list held afterwards.
    #[serde(rename = "dlpub")]
    PublishDeviceList {
        /// The list, signed by the account key; it must name the publishing device.
        #[serde(rename = "l")]
        list: Box<SignedDeviceList>,
    },
    /// Fetch the device list a user published at their home relay (this one, or asked of
    /// theirs). Device lists are public key material: any registered device may ask.
    #[serde(rename = "dlget")]
    GetDeviceList {
        /// Whose.
        #[serde(rename = "u")]
        user: UserId,
    },
    /// Leave a sealed link package for a device being linked to this account (it fetches it
    /// with [`Request::TakeLink`] before it is registered). Only a device of an account whose
    /// held list names `device` may leave one; the relay keeps it for minutes, in memory.
    #[serde(rename = "lput")]
    PutLink {
        /// The device being linked.
        #[serde(rename = "d")]
        device: DeviceId,
        /// Sealed with the secret of the link code; opaque to the relay.
        #[serde(rename = "p", with = "serde_bytes")]
        package: Vec<u8>,
    },
    /// Take the link package left for this (not yet registered) device, if any. The package
    /// is handed out once.
    #[serde(rename = "ltake")]
    TakeLink,
    /// Register (replacing any earlier) or, with `None`, remove this device's Web Push
    /// subscription: while the device has no subscribed stream, mail landing for it makes the
    /// relay push a content-free notice there. Answered with [`Response::Push`].
    #[serde(rename = "pushset")]
    SetPush {
        /// The subscription, or `None` to stop pushes.
        #[serde(rename = "s")]
        subscription: Option<Box<PushSubscription>>,
    },
    /// This device's push subscription and the relay's VAPID key. Answered with
    /// [`Response::Push`].
    #[serde(rename = "pushget")]
    GetPush,
    /// Store this user's sealed profile at its home relay (this one), replacing the held one
    /// only with a higher version. Answered with [`Response::Profile`] (what is held after).
    #[serde(rename = "profput")]
    PutProfile {
        /// The profile, sealed under the user's profile key.
        #[serde(rename = "p")]
        profile: Box<SealedProfile>,
    },
    /// The sealed profile of a user (held here for users homed here, else asked of their
    /// home relay). Answered with [`Response::Profile`].
    #[serde(rename = "profget")]
    GetProfile {
        /// Whose.
        #[serde(rename = "u")]
        user: UserId,
    },
    /// Store a status for its audience until it expires (at most 24 hours). Answered with
    /// [`Response::StatusPosted`].
    #[serde(rename = "stpost")]
    PostStatus(Box<crate::status::StatusPost>),
    /// Statuses this user is in the audience of and that have not expired, oldest first,
    /// stored after `after_ms` (0: all). Answered with [`Response::Statuses`].
    #[serde(rename = "stget")]
    GetStatuses {
        /// Only statuses stored after this (relay clock, milliseconds since the epoch).
        #[serde(rename = "a")]
        after_ms: u64,
    },
}

/// Registration of a device under an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// The account's certificate for the connecting device.
    #[serde(rename = "c")]
    pub cert: DeviceCert,
    /// Invite code, for relays whose policy asks for one.
    #[serde(rename = "i")]
    pub invite: Option<String>,
    /// A newer device list naming this device, signed by the account (a device holding the
    /// account key registering itself: the first device, or one restored from an export).
    /// Without it the held list must already name the device.
    #[serde(rename = "l", default)]
    pub list: Option<Box<SignedDeviceList>>,
}

/// Olm keys of the connected device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadKeys {
    /// The device's Olm identity key (required on the first upload).
    #[serde(rename = "i")]
    pub identity: Option<IdentityKey>,
    /// Fresh one-time keys.
    #[serde(rename = "o")]
    pub one_time_keys: BoundedVec<SignedPreKey, MAX_ONE_TIME_KEYS_PER_UPLOAD>,
    /// A new fallback key, replacing the previous one.
    #[serde(rename = "f")]
    pub fallback: Option<SignedPreKey>,
}

/// What a relay sends to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayFrame {
    /// The answer to the request with the same id.
    #[serde(rename = "r")]
    Response {
        /// The request's id.
        #[serde(rename = "i")]
        id: u64,
        /// The outcome.
        #[serde(rename = "b")]
        body: Result<Response, ErrorAnswer>,
    },
    /// Mailbox envelopes, in sequence order.
    #[serde(rename = "d")]
    Deliver {
        /// The envelopes with their mailbox sequence numbers.
        #[serde(rename = "e")]
        items: BoundedVec<Delivery, MAX_BATCH_ENVELOPES>,
    },
    /// Everything stored when the subscription started has been pushed.
    #[serde(rename = "c")]
    CaughtUp {
        /// The last sequence number pushed so far.
        #[serde(rename = "s")]
        head: u64,
    },
    /// The relay cannot go on with this stream and closes it after this frame.
    #[serde(rename = "x")]
    Fatal(ErrorAnswer),
    /// A watched user's presence changed.
    #[serde(rename = "p")]
    Presence(PresenceReport),
    /// An ephemeral envelope (a typing notice) for this user.
    #[serde(rename = "t")]
    Ephemeral(RawEnvelope),
}

impl RelayFrame {
    /// Decodes a frame received from a relay.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_FRAME_BYTES)
    }
}

/// One mailbox entry pushed to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Per-user mailbox sequence number; ack it once the entry is stored.
    #[serde(rename = "s")]
    pub seq: u64,
    /// An envelope as its sender signed it, or a bounce.
    #[serde(rename = "m")]
    pub item: MailboxItem,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The device is registered.
    #[serde(rename = "reg")]
    Registered {
        /// False when this device was already registered (registration is idempotent).
        #[serde(rename = "n")]
        new: bool,
        /// One-time keys the relay holds for the device.
        #[serde(rename = "k")]
        one_time_keys: u32,
        /// Addresses the relay announces, for the user's home record.
        #[serde(rename = "a")]
        relay_addrs: BoundedVec<String, MAX_CARD_ADDRS>,
    },
    /// The home record was accepted.
    #[serde(rename = "home")]
    HomePublished,
    /// Keys were stored.
    #[serde(rename = "keys")]
    KeysUploaded {
        /// One-time keys the relay now holds for the device.
        #[serde(rename = "k")]
        one_time_keys: u32,
    },
    /// A verified-by-the-client bundle of the asked user.
    #[serde(rename = "bundle")]
    Bundle(Box<KeyBundle>),
    /// One bundle or refusal per asked user, in order.
    #[serde(rename = "bundles")]
    Bundles {
        /// The answers.
        #[serde(rename = "b")]
        bundles: BoundedVec<Result<KeyBundle, ErrorAnswer>, MAX_BATCH_ENVELOPES>,
    },
    /// One outcome per envelope, in order.
    #[serde(rename = "sent")]
    Sent {
        /// The outcomes.
        #[serde(rename = "o")]
        outcomes: BoundedVec<SendOutcome, MAX_BATCH_ENVELOPES>,
    },
    /// The subscription started.
    #[serde(rename = "sub")]
    Subscribed {
        /// The device's last acked sequence number; pushes start after it.
        #[serde(rename = "a")]
        acked: u64,
        /// The newest sequence number in the mailbox.
        #[serde(rename = "h")]
        head: u64,
        /// One-time keys the relay holds for the device (replenish when low).
        #[serde(rename = "k")]
        one_time_keys: u32,
        /// Send [`ClientFrame::Ping`] this often (milliseconds) to stay online; a device
        /// silent for three times as long is taken as gone.
        #[serde(rename = "p", default)]
        heartbeat_ms: u64,
    },
    /// Who may see this user's presence was stored.
    #[serde(rename = "pset")]
    PresenceSet,
    /// The current presence of each watched user, in order.
    #[serde(rename = "pwatch")]
    Presence {
        /// The reports.
        #[serde(rename = "r")]
        reports: BoundedVec<PresenceReport, MAX_PRESENCE_WATCH>,
    },
    /// How many live devices (or relays serving them) the ephemeral envelope reached; 0 if
    /// the recipient is offline (it was dropped).
    #[serde(rename = "eph")]
    EphemeralPassed {
        /// Devices or relays reached.
        #[serde(rename = "n")]
        reached: u32,
    },
    /// Consecutive descriptor versions of a group, oldest first (empty: none from there).
    #[serde(rename = "gvers")]
    GroupVersions {
        /// The versions.
        #[serde(rename = "v")]
        versions: BoundedVec<SignedDescriptor, MAX_DESCRIPTORS_PER_REQUEST>,
    },
    /// The device list held for the asked (or publishing) user; `None` if none is held.
    #[serde(rename = "dl")]
    DeviceList {
        /// The list, as the account signed it.
        #[serde(rename = "l")]
        list: Option<Box<SignedDeviceList>>,
        /// For the asking account's own list only: whether each device is online and when
        /// it was last seen (empty for anyone else's list).
        #[serde(rename = "s", default)]
        seen: BoundedVec<DeviceSeen, MAX_DEVICES_PER_ACCOUNT>,
    },
    /// The link package was left for the device.
    #[serde(rename = "lput")]
    LinkStored,
    /// The link package left for this device, if any (handed out once).
    #[serde(rename = "ltake")]
    Link {
        /// Sealed with the secret of the link code.
        #[serde(rename = "p", with = "serde_bytes", default)]
        package: Option<Vec<u8>>,
    },
    /// The device's push subscription as the relay holds it now (after a `SetPush`, the new
    /// one), and the relay's VAPID public key (uncompressed P-256, 65 bytes: the
    /// `applicationServerKey` a browser push service asks for; empty if push is off).
    #[serde(rename = "push")]
    Push {
        /// The subscription, if any.
        #[serde(rename = "s")]
        subscription: Option<Box<PushSubscription>>,
        /// The relay's VAPID public key.
        #[serde(rename = "v", with = "serde_bytes")]
        vapid_key: Vec<u8>,
    },
    /// The sealed profile held for the asked (or storing) user; `None` if none is held.
    #[serde(rename = "prof")]
    Profile {
        /// The profile.
        #[serde(rename = "p")]
        profile: Option<Box<SealedProfile>>,
    },
    /// The status is stored (`new` false: it was already, under that id).
    #[serde(rename = "stpost")]
    StatusPosted {
        /// Whether this post stored it.
        #[serde(rename = "n")]
        new: bool,
    },
    /// Statuses for the asking user, oldest first (full: ask again after the last).
    #[serde(rename = "stget")]
    Statuses {
        /// The statuses.
        #[serde(rename = "s")]
        items: crate::status::StatusBatch,
    },
}

/// What the home relay knows of one of the account's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSeen {
    /// The device.
    #[serde(rename = "d")]
    pub device: DeviceId,
    /// Whether it has a live, subscribed session now.
    #[serde(rename = "o")]
    pub online: bool,
    /// When its last session ended (milliseconds since the Unix epoch), if one did.
    #[serde(rename = "l")]
    pub last_seen_ms: Option<u64>,
}

/// What became of one envelope in a `Send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendOutcome {
    /// Durably stored by the relay: the ✓ "sent" tick.
    #[serde(rename = "ok")]
    Accepted,
    /// Already stored earlier under this id (a retry); nothing new was stored.
    #[serde(rename = "dup")]
    Duplicate,
    /// Not stored, for the given reason.
    #[serde(rename = "no")]
    Rejected(ErrorAnswer),
}

impl SendOutcome {
    /// Whether the relay holds the envelope (accepted now or before).
    pub fn is_stored(&self) -> bool {
        matches!(self, SendOutcome::Accepted | SendOutcome::Duplicate)
    }
}
