//! Tables of the client's database and the records kept in them.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use tidings_protocol::{
    EnvelopeId, Kind, RawEnvelope, UserId,
    content::{Payload, ReceiptStatus},
};

/// Small named values: relay address, Olm account pickle, ...
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// contact name -> CBOR contact card.
pub const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
/// user id -> contact name.
pub const CONTACT_NAMES: TableDefinition<&[u8; 32], &str> = TableDefinition::new("contact_names");
/// peer device -> the user it was verified to belong to.
pub const PEER_USERS: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("peer_users");
/// user -> the device we talk to.
pub const USER_DEVICES: TableDefinition<&[u8; 32], &[u8; 32]> =
    TableDefinition::new("user_devices");
/// peer device -> encrypted Olm sessions.
pub const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// conversation user ++ local sequence -> CBOR [`MessageRecord`].
pub const MESSAGES: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("messages");
/// envelope id -> key in [`MESSAGES`].
pub const MESSAGE_IDS: TableDefinition<&[u8; 16], &[u8; 40]> = TableDefinition::new("message_ids");
/// conversation user -> last local sequence used.
pub const CONVERSATION_HEADS: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("conversation_heads");
/// outbox sequence -> CBOR [`OutboxEntry`]; sent in key order.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// envelope ids already received (dedupe) -> when.
pub const RECEIVED: TableDefinition<&[u8; 16], u64> = TableDefinition::new("received");

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

/// One message in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The envelope id it travels under.
    pub id: EnvelopeId,
    /// The other side of the conversation.
    pub peer: UserId,
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
}

/// Something waiting to be sent, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Envelope id (fixed before the first attempt, so retries dedupe at the relay).
    pub id: EnvelopeId,
    /// Recipient user.
    pub to: UserId,
    /// Envelope kind.
    pub kind: Kind,
    /// What to encrypt.
    pub payload: Payload,
    /// The sealed envelope once encrypted: every retry sends these exact bytes.
    pub sealed: Option<RawEnvelope>,
}

/// Key of a message in [`MESSAGES`].
pub fn message_key(peer: &UserId, seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(peer.as_bytes());
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}
