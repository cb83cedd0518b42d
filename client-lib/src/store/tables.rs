//! Tables of the client's database and the records kept in them.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use tidings_protocol::{
    Address, BlobRef, DeviceId, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient, UserId,
    content::{Chat, Payload, ReceiptStatus},
    media::MediaMessage,
};

/// Small named values: relay address, Olm account pickle, ...
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// contact name -> CBOR contact card.
pub const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
/// user id -> contact name.
pub const CONTACT_NAMES: TableDefinition<&[u8; 32], &str> = TableDefinition::new("contact_names");
/// peer device -> the user it was verified to belong to.
pub const PEER_USERS: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("peer_users");
/// user -> the newest verified signed device list of the account (ours too).
pub const DEVICE_LISTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("device_lists");
/// peer device -> encrypted Olm sessions.
pub const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// conversation key ++ local sequence -> CBOR [`MessageRecord`].
pub const MESSAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("messages");
/// envelope id -> key in [`MESSAGES`].
pub const MESSAGE_IDS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("message_ids");
/// conversation key -> last local sequence used.
pub const CONVERSATION_HEADS: TableDefinition<&[u8], u64> =
    TableDefinition::new("conversation_heads");
/// group id -> newest accepted CBOR signed descriptor.
pub const GROUPS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("groups");
/// group id -> CBOR [`OutboundGroup`]: this device's sending session for the group.
pub const GROUP_OUTBOUND: TableDefinition<&[u8; 16], &[u8]> =
    TableDefinition::new("group_outbound");
/// "group/sender/session id" -> pickled inbound Megolm session.
pub const GROUP_INBOUND: TableDefinition<&str, &str> = TableDefinition::new("group_inbound");
/// group id ++ sender ++ arrival number ++ envelope id prefix -> envelope bytes waiting for
/// their session key (in arrival order, so they are released in the order they were sent).
pub const GROUP_PENDING: TableDefinition<&[u8; 64], &[u8]> = TableDefinition::new("group_pending");
/// message id ++ member -> receipt status (1 delivered, 2 read) of our group messages.
pub const GROUP_RECEIPTS: TableDefinition<&[u8; 48], u8> = TableDefinition::new("group_receipts");
/// outbox sequence -> CBOR [`OutboxEntry`]; sent in key order.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// sender user ++ envelope id of envelopes already received (dedupe) -> when. Keyed by sender
/// too, so an envelope of someone else under the same id cannot make the real one a
/// "duplicate".
pub const RECEIVED: TableDefinition<&[u8; 48], u64> = TableDefinition::new("received_from");

/// sender user ++ arrival number -> CBOR held-back envelope: a direct envelope from a device
/// its account's held list does not name, kept while that list cannot be fetched (one user's
/// come out in arrival order).
pub const HELD: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("held_back");

/// SHA-256 of a file's plaintext -> CBOR [`UploadRecord`]: the file sealed for sending (and
/// whether its upload finished), so sending it again reuses the blob and an interrupted
/// upload resumes with the same sealed bytes.
pub const UPLOADS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("uploads");

/// The [`RECEIVED`] key of an envelope.
pub fn received_key(sender: &UserId, id: &EnvelopeId) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..32].copy_from_slice(sender.as_bytes());
    key[32..].copy_from_slice(id.as_bytes());
    key
}

/// META key: the home relay's dial address.
pub const META_RELAY_ADDR: &str = "relay_addr";
/// META key: the Olm account pickle.
pub const META_OLM_ACCOUNT: &str = "olm_account";
/// META key: set once the identity key reached the relay.
pub const META_KEYS_PUBLISHED: &str = "keys_published";
/// META key: the newest home record this user signed (CBOR).
pub const META_HOME_RECORD: &str = "home_record";
/// META key: the last outbox sequence number handed out (8 bytes, big-endian).
pub const META_OUTBOX_SEQ: &str = "outbox_seq";
/// META key: the previous home relay's address, while it still has to be told of a move.
pub const META_MOVE_NOTICE: &str = "move_notice";

/// Largest record we read back.
pub const MAX_RECORD: usize = 256 * 1024;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Sent by this device.
    Outgoing,
    /// Received from the other side.
    Incoming,
}

/// Where a message stands. Outgoing: Pending -> Sent (✓) -> Delivered (✓✓) -> Read, or Failed.
/// Incoming: Received -> Read (we marked it read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageStatus {
    /// Not yet accepted by the home relay.
    Pending,
    /// Durably accepted by the home relay (✓).
    Sent,
    /// Stored on the recipient's device (✓✓).
    Delivered,
    /// Read by the recipient (outgoing) or by us (incoming).
    Read,
    /// Received from the other side, not yet read.
    Received,
    /// The relay refused it for good, with the reason.
    Failed(String),
}

impl MessageStatus {
    /// Order of progress, so late or repeated receipts never move a status back.
    pub fn rank(&self) -> u8 {
        match self {
            MessageStatus::Pending => 0,
            MessageStatus::Failed(_) => 1,
            MessageStatus::Received => 1,
            MessageStatus::Sent => 2,
            MessageStatus::Delivered => 3,
            MessageStatus::Read => 4,
        }
    }

    /// The status a receipt moves a sent message to.
    pub fn from_receipt(status: ReceiptStatus) -> Self {
        match status {
            ReceiptStatus::Delivered => MessageStatus::Delivered,
            ReceiptStatus::Read => MessageStatus::Read,
        }
    }

    /// The tick marks people see.
    pub fn ticks(&self) -> &'static str {
        match self {
            MessageStatus::Pending => "…",
            MessageStatus::Sent => "✓",
            MessageStatus::Delivered => "✓✓",
            MessageStatus::Read => "✓✓ read",
            MessageStatus::Received => "",
            MessageStatus::Failed(_) => "✗ failed",
        }
    }
}

/// A 1:1 conversation or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Conversation {
    /// With one user.
    Direct(UserId),
    /// In a group.
    Group(GroupId),
}

impl Conversation {
    /// Whether it is a 1:1 conversation (or, with ourselves, a sync to our other devices).
    pub fn is_direct(&self) -> bool {
        matches!(self, Conversation::Direct(_))
    }

    /// The key prefix of this conversation's messages.
    pub fn key(&self) -> Vec<u8> {
        match self {
            Conversation::Direct(user) => [b"u".as_slice(), user.as_bytes()].concat(),
            Conversation::Group(group) => [b"g".as_slice(), group.as_bytes()].concat(),
        }
    }
}

impl From<Conversation> for Chat {
    fn from(conversation: Conversation) -> Self {
        match conversation {
            Conversation::Direct(user) => Chat::Direct(user),
            Conversation::Group(group) => Chat::Group(group),
        }
    }
}

impl From<Chat> for Conversation {
    fn from(chat: Chat) -> Self {
        match chat {
            Chat::Direct(user) => Conversation::Direct(user),
            Chat::Group(group) => Conversation::Group(group),
        }
    }
}

/// One message in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The message id: a group message's envelope id; a 1:1 message's logical id, which
    /// each of its per-device envelopes carries inside (and receipts refer to).
    pub id: EnvelopeId,
    /// The other side of a 1:1 conversation, or the author of a group message.
    pub peer: UserId,
    /// The group, for group messages.
    #[serde(default)]
    pub group: Option<GroupId>,
    /// Who sent it.
    pub direction: Direction,
    /// The text.
    pub text: String,
    /// The sender's clock when sent (ms since the epoch).
    pub sent_at_ms: u64,
    /// Our clock when stored here.
    pub stored_at_ms: u64,
    /// Where it stands.
    pub status: MessageStatus,
    /// The photo, video or file it carries (its text is then the caption, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Box<MediaMessage>>,
}

impl MessageRecord {
    /// The conversation it belongs to.
    pub fn conversation(&self) -> Conversation {
        match self.group {
            Some(group) => Conversation::Group(group),
            None => Conversation::Direct(self.peer),
        }
    }
}

/// A file sealed on this device for sending, and where its upload stands.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The blob (its id, the relay it goes to, its ciphertext size).
    pub blob: BlobRef,
    /// The key it is sealed under.
    #[serde(with = "serde_bytes")]
    pub key: [u8; 32],
    /// The STREAM nonce prefix.
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 7],
    /// Plaintext bytes.
    pub plain_size: u64,
    /// Whether the relay stored it whole.
    pub uploaded: bool,
}

impl std::fmt::Debug for UploadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("UploadRecord")
            .field("blob", &self.blob)
            .field("plain_size", &self.plain_size)
            .field("uploaded", &self.uploaded)
            .finish_non_exhaustive()
    }
}

/// What an outbox entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxContent {
    /// End-to-end encrypted on sealing (Olm to a user, Megolm to a group).
    Encrypted(Payload),
    /// Sent as it is: a signed group descriptor change, which relays must read.
    Plain(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Something waiting to be sent, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The message id (fixed before the first attempt): a group envelope's id; for a user,
    /// the logical id every per-device envelope carries.
    pub id: EnvelopeId,
    /// Recipient: a user (every device of theirs; ourselves: our other devices) or a group.
    pub to: Conversation,
    /// Envelope kind.
    pub kind: Kind,
    /// What it carries.
    pub content: OutboxContent,
    /// The sealed envelopes once encrypted (one per device for a user, one for a group):
    /// every retry sends these exact bytes. Empty until sealed.
    #[serde(rename = "envelopes", default)]
    pub sealed: Vec<SealedCopy>,
    /// For an entry to ourselves: only this one of our other devices (the history for a
    /// device that joined), not all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<DeviceId>,
}

impl OutboxEntry {
    /// A new entry, not sealed yet.
    pub fn new(id: EnvelopeId, to: Conversation, kind: Kind, content: OutboxContent) -> Self {
        Self {
            id,
            to,
            kind,
            content,
            sealed: Vec::new(),
            only: None,
        }
    }
}

/// One sealed envelope of an outbox entry and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCopy {
    /// A device (of the recipient, or one of our own other devices) or the group.
    pub to: Recipient,
    /// The signed envelope.
    pub envelope: RawEnvelope,
}

/// This device's sending session for a group, and which devices already have its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundGroup {
    /// The pickled Megolm session.
    pub pickle: String,
    /// Member devices (our own other devices too) that were sent the session key.
    #[serde(rename = "shared_devices", default)]
    pub shared_with: Vec<Address>,
    /// Members whose devices were not known: the key waits in the outbox for all of them.
    #[serde(default)]
    pub queued_for: Vec<UserId>,
}

/// Key of a message in [`MESSAGES`].
pub fn message_key(conversation: &Conversation, seq: u64) -> Vec<u8> {
    let mut key = conversation.key();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Key of an inbound group session.
pub fn inbound_key(group: &GroupId, sender: &UserId, session_id: &str) -> String {
    format!("{group}/{sender}/{session_id}")
}

/// Key of a group envelope waiting for its session key: the `arrival`-th from `sender` in
/// `group` (big-endian, so keys sort in arrival order).
pub fn pending_key(group: &GroupId, sender: &UserId, arrival: u64, id: &EnvelopeId) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..16].copy_from_slice(group.as_bytes());
    key[16..48].copy_from_slice(sender.as_bytes());
    key[48..56].copy_from_slice(&arrival.to_be_bytes());
    key[56..].copy_from_slice(&id.as_bytes()[..8]);
    key
}

/// The arrival number in a [`pending_key`].
pub fn pending_arrival(key: &[u8; 64]) -> u64 {
    let mut arrival = [0u8; 8];
    arrival.copy_from_slice(&key[48..56]);
    u64::from_be_bytes(arrival)
}

/// Key of a member's receipt for one of our group messages.
pub fn receipt_key(id: &EnvelopeId, member: &UserId) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..16].copy_from_slice(id.as_bytes());
    key[16..].copy_from_slice(member.as_bytes());
    key
}
