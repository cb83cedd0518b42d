//! What the admin requests answer: plain data, shared by the relay's handlers, the wire
//! format and the CLI's printing.

use serde::{Deserialize, Serialize};

/// Most users one `users list` answer carries; past it the answer says it was cut.
pub const MAX_LISTED_USERS: usize = 100_000;

/// Most devices of one user an answer describes (the relay's device cap is far lower).
pub const MAX_LISTED_DEVICES: usize = 1024;

/// What `tidings-relay status` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The relay's version (its crate version).
    pub version: String,
    /// The relay's name from its config.
    pub name: String,
    /// Its peer id.
    pub peer_id: String,
    /// The addresses it listens on.
    pub listen_addrs: Vec<String>,
    /// The addresses it announces to clients (empty: the listen addresses).
    pub announce_addrs: Vec<String>,
    /// When it started (milliseconds since the epoch).
    pub started_at_ms: u64,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Users registered here.
    pub users: u64,
    /// Of them, suspended by the operator.
    pub suspended_users: u64,
    /// Devices registered here.
    pub devices: u64,
    /// Devices with an open session now.
    pub devices_online: u64,
    /// Entries waiting in all mailboxes.
    pub mailbox_entries: u64,
    /// Their bytes.
    pub mailbox_bytes: u64,
    /// Entries waiting in the outbox for other relays.
    pub outbox_entries: u64,
    /// The bytes of the envelopes the outbox holds.
    pub outbox_bytes: u64,
    /// Whole media blobs held.
    pub media_blobs: u64,
    /// Their bytes.
    pub media_bytes: u64,
    /// Database files in the data dir: name and size in bytes.
    pub database_files: Vec<(String, u64)>,
    /// Other relays in the DHT routing table.
    pub dht_routing_peers: u64,
    /// When the mailbox database was last written (its file's modification time, ms since
    /// the epoch): the last commit.
    pub last_commit_ms: Option<u64>,
    /// Bytes `tidings-relay compact` could give back, when known.
    pub reclaimable_bytes: Option<u64>,
    /// Whether compacting would help, when known.
    pub compact_would_help: Option<bool>,
}

/// One user in `users list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The user id, as `tidings` prints it.
    pub user: String,
    /// When their first device registered here (ms since the epoch).
    pub registered_at_ms: u64,
    /// Whether their home is this relay (false: they moved away, their mail is handed on).
    pub home_here: bool,
    /// When the operator suspended them, if they are suspended.
    pub suspended_at_ms: Option<u64>,
    /// Devices registered here.
    pub devices: u64,
    /// Entries waiting in their devices' mailboxes.
    pub mailbox_entries: u64,
    /// Their bytes.
    pub mailbox_bytes: u64,
    /// Their envelopes waiting in the outbox.
    pub outbox_entries: u64,
    /// Media bytes charged to them.
    pub media_bytes: u64,
    /// When a device of theirs last ended a session (None: never, or one is online).
    pub last_seen_ms: Option<u64>,
}

/// The answer to `users list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    /// The users, at most [`MAX_LISTED_USERS`].
    pub users: Vec<UserSummary>,
    /// Whether more users are registered than listed.
    pub truncated: bool,
}

/// One device in `users show`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetail {
    /// The device id.
    pub device: String,
    /// When it registered here.
    pub registered_at_ms: u64,
    /// When its last subscribed session ended.
    pub last_seen_ms: Option<u64>,
    /// Whether it has a session open now.
    pub online: bool,
    /// Entries waiting for it.
    pub mailbox_entries: u64,
    /// Their bytes.
    pub mailbox_bytes: u64,
}

/// The answer to `users show USER`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetail {
    /// The totals, as in the list.
    pub summary: UserSummary,
    /// Each device, at most [`MAX_LISTED_DEVICES`].
    pub devices: Vec<DeviceDetail>,
    /// Uploads in progress.
    pub media_uploads: u64,
    /// The mailbox quota of each device: entries (`limits.mailbox_max_envelopes`).
    pub mailbox_quota_entries: u64,
    /// The mailbox quota of each device: bytes (`limits.mailbox_max_bytes`).
    pub mailbox_quota_bytes: u64,
    /// The account's media quota (`blobs.user_quota_bytes`).
    pub media_quota_bytes: u64,
    /// The account's share of the outbox (`limits.outbox_max_per_user`).
    pub outbox_quota_entries: u64,
}

/// What suspend, resume or remove did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChange {
    /// The user.
    pub user: String,
    /// Whether anything changed (false: it already was so).
    pub changed: bool,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Mailbox entries deleted (remove).
    pub mailbox_entries_deleted: u64,
    /// Media blobs deleted (remove).
    pub media_blobs_deleted: u64,
}
