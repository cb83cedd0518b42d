//! Why a client operation failed: [`ClientError`], the group-specific [`GroupOpError`] and the device-specific [`DeviceError`].

use std::{path::PathBuf, time::Duration};

use tidings_keys::{ExportError, KeyFileError, LinkError, NoAccountKey};
use tidings_protocol::{
    DecodeError, DeviceId, DeviceListError, ErrorAnswer, GroupId,
    limits::{MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN, MAX_TEXT_BYTES},
};

use crate::{connection::ConnectionError, net::NetError, store::StoreError};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The data dir holds no identity.
    #[error("{0} holds no identity; run `tidings init` first")]
    NotInitialized(PathBuf),
    /// The data dir already holds an identity.
    #[error("{0} already holds an identity; refusing to replace it")]
    AlreadyInitialized(PathBuf),
    /// The key file could not be used.
    #[error("key file: {0}")]
    Keys(#[from] KeyFileError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The connection to the relay failed (a refusal is [`ClientError::Refused`] instead).
    #[error(transparent)]
    Connection(ConnectionError),
    /// No relay is known yet.
    #[error("not registered with a relay yet; run `tidings register --relay MULTIADDR`")]
    NotRegistered,
    /// The relay to move to is the home relay already.
    #[error("that relay is already your home")]
    AlreadyHome,
    /// No such contact (or user id).
    #[error("no contact named {0:?} (add one with `tidings contact add NAME CARD`)")]
    UnknownContact(String),
    /// The relay refused, with its reason.
    #[error("the relay refused: {0}")]
    Refused(ErrorAnswer),
    /// A relay address is malformed.
    #[error("invalid relay address {0:?}")]
    BadAddress(String),
    /// Several groups carry this name.
    #[error("several groups are named {0:?}; use the group id")]
    AmbiguousGroup(String),
    /// A group operation is not possible.
    #[error(transparent)]
    Group(#[from] GroupOpError),
    /// A device list was refused (forged, stale, another user's, or a bad shape).
    #[error("device list refused: {0}")]
    DeviceList(#[from] DeviceListError),
    /// A message is too long.
    #[error("message of {0} bytes is longer than the limit of {MAX_TEXT_BYTES}")]
    TextTooLong(usize),
    /// A list is longer than a request may carry.
    #[error("too many {what}: {source}")]
    TooMany {
        /// What the list holds.
        what: &'static str,
        /// The bound it broke.
        source: DecodeError,
    },
    /// The home record kept in the local store does not decode.
    #[error("the stored home record is corrupt: {0}")]
    CorruptHomeRecord(DecodeError),
    /// Creating the data dir failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Linking, listing or removing devices, or exporting the account, failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Sending, saving or forwarding media failed.
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
    /// A blocking task was cancelled (the runtime is shutting down).
    #[error("the client is shutting down")]
    Cancelled,
    /// A push subscription is not of the shape Web Push needs.
    #[error("invalid push subscription: {0}")]
    Push(#[from] tidings_protocol::push::PushSubscriptionError),
    /// Something this library guarantees did not hold (a bug).
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// A profile could not be set, sealed or opened.
    #[error(transparent)]
    Profile(#[from] crate::profile::error::ProfileOpError),
    /// A status update could not be posted or shown.
    #[error(transparent)]
    Status(#[from] crate::status::error::StatusError),
}

impl From<ConnectionError> for ClientError {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::Refused(answer) => ClientError::Refused(answer),
            other => ClientError::Connection(other),
        }
    }
}

/// Why a group could not be changed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupOpError {
    /// The name or id means a contact, not a group.
    #[error("{0:?} is not a group")]
    NotAGroup(String),
    /// This device holds no descriptor of the group.
    #[error("group {0} is not known here")]
    Unknown(GroupId),
    /// Leaving would leave the group without an admin.
    #[error("you are the last admin: promote someone first")]
    LastAdmin,
    /// The group name is too long.
    #[error("group names are at most {MAX_GROUP_NAME_LEN} bytes")]
    NameTooLong,
    /// The group would have too many members.
    #[error("a group has at most {MAX_GROUP_MEMBERS} members ({0} asked)")]
    TooManyMembers(usize),
    /// The relay refused the change for good.
    #[error("the relay refused the change: {0}")]
    Refused(String),
    /// The change waits in the outbox (why, as the flush reported it).
    #[error("the change is queued and applies once your relay takes it ({0})")]
    Queued(String),
}

/// Why a device operation failed (beyond the relay and the network).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// This device was linked and does not hold the account key.
    #[error(transparent)]
    NoAccountKey(#[from] NoAccountKey),
    /// The account could not be exported.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The link package did not open or does not certify this device.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// No package came within the wait.
    #[error("no device approved this link within {0:?}; run `tidings device link` again")]
    LinkTimedOut(Duration),
    /// The relay served a device list that does not verify, or names another account.
    #[error("the relay served a bad device list: {0}")]
    BadList(#[from] DeviceListError),
    /// After linking, the account's list at the relay does not name this device (or is older
    /// than the one the approving device published).
    #[error("the account's device list at the relay does not name this device")]
    NotListed,
    /// The device to remove is not on the account's list.
    #[error("device {0} is not on your account's device list")]
    UnknownDevice(DeviceId),
    /// The device holding the account key cannot remove itself.
    #[error("this device holds the account key and cannot remove itself")]
    RemoveSelf,
    /// A device name is too long or holds control characters.
    #[error("bad device name: {0}")]
    BadName(DeviceListError),
}

impl From<NoAccountKey> for ClientError {
    fn from(error: NoAccountKey) -> Self {
        ClientError::Device(DeviceError::NoAccountKey(error))
    }
}

/// Why one outbox entry could not be sealed now.
pub(crate) enum SealError {
    /// Try again later; keep this recipient's later entries waiting too (order).
    Wait(String),
    /// Give up on this entry.
    Fail(String),
    /// The session itself failed.
    Client(ClientError),
}

impl From<ClientError> for SealError {
    fn from(error: ClientError) -> Self {
        SealError::Client(error)
    }
}
