//! redb table definitions, key layouts and the records stored in them.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use tidings_protocol::{
    DeviceCert, DeviceId, EnvelopeId, GroupId, HomeRecord, IdentityKey, SignedPreKey, UserId,
    presence::Visibility,
};

/// user id -> CBOR [`UserRecord`].
pub const USERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("users");
/// device id -> user id (every registered device).
pub const DEVICES: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("devices");
/// device id -> CBOR [`DeviceRecord`] (schema 2).
pub const DEVICE_RECORDS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("device_records");
/// user id ++ device id -> () : the registered devices of each user, one range per user
/// (schema 2).
pub const USER_DEVICES: TableDefinition<&[u8; 64], ()> = TableDefinition::new("user_devices");
/// device id ++ curve25519 key -> CBOR [`SignedPreKey`] (unclaimed one-time keys).
pub const ONE_TIME_KEYS: TableDefinition<&[u8; 64], &[u8]> = TableDefinition::new("one_time_keys");
/// device id -> [`Cursor`] (16 bytes); user id in schema 1.
pub const CURSORS: TableDefinition<&[u8; 32], &[u8; 16]> = TableDefinition::new("cursors");
/// device id -> bytes of the envelopes waiting in the device's mailbox; user id in schema 1.
pub const MAILBOX_BYTES: TableDefinition<&[u8; 32], u64> = TableDefinition::new("mailbox_bytes");
/// device id ++ sequence number (big-endian) -> envelope bytes; user id in schema 1.
pub const MAILBOX: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("mailbox");

/// outbox sequence -> [`OutboxMeta`] (88 bytes): envelopes accepted for users elsewhere.
pub const OUTBOX_META: TableDefinition<u64, &[u8; 88]> = TableDefinition::new("outbox_meta");
/// envelope id -> envelope bytes, shared by every outbox entry of that envelope.
pub const OUTBOX_BODY: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("outbox_bodies");
/// envelope id -> how many outbox entries use the body.
pub const OUTBOX_REFS: TableDefinition<&[u8; 16], u64> = TableDefinition::new("outbox_refs");
/// local sender's user id -> how many outbox entries their envelopes hold.
pub const OUTBOX_SENDERS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("outbox_senders");
/// mailbox key -> [`relay_tag`] of the relay whose forward put the entry there.
pub const MAILBOX_ORIGINS: TableDefinition<&[u8; 40], &[u8; 16]> =
    TableDefinition::new("mailbox_origins");
/// [`relay_tag`] -> how many mailbox entries that relay's forwards hold here.
pub const RELAY_HOLDS: TableDefinition<&[u8; 16], u64> = TableDefinition::new("relay_holds");
/// envelope id -> bytes of a group envelope stored once for all local recipients.
pub const BLOBS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("blobs");
/// envelope id -> how many mailbox entries point at the blob.
pub const BLOB_REFS: TableDefinition<&[u8; 16], u64> = TableDefinition::new("blob_refs");
/// group id ++ version (big-endian) -> signed descriptor.
pub const GROUP_VERSIONS: TableDefinition<&[u8; 24], &[u8]> =
    TableDefinition::new("group_versions");
/// group id -> newest version held.
pub const GROUP_HEADS: TableDefinition<&[u8; 16], u64> = TableDefinition::new("group_heads");
/// user id -> CBOR [`PresenceRecord`].
pub const PRESENCE: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("presence");
/// user id -> the user's signed device list, as `SignedDeviceList::encode` writes it.
pub const DEVICE_LISTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("device_lists");

/// media blob id -> CBOR [`super::MediaBlob`]: a whole media blob held under
/// `<data-dir>/blobs/` (new in schema 2's lifetime: a missing table is created empty, no
/// migration). Not [`BLOBS`], which holds group envelopes stored once for many mailboxes.
pub const MEDIA_BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("media_blobs");
/// user id ++ media blob id -> CBOR [`super::MediaUpload`]: uploads in progress, their bytes
/// under `<data-dir>/blobs/partial/`.
pub const MEDIA_UPLOADS: TableDefinition<&[u8; 64], &[u8]> = TableDefinition::new("media_uploads");
/// user id -> media bytes charged to the account: whole blobs it uploaded first, plus the
/// declared size of its uploads in progress.
pub const MEDIA_BYTES: TableDefinition<&[u8; 32], u64> = TableDefinition::new("media_bytes");

/// media blob id -> stored envelopes (mailbox and outbox entries) naming it, whether the
/// blob is held here or not yet; no key means none.
pub const MEDIA_REFS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("media_refs");

/// device id -> CBOR [`super::PushRecord`]: the device's Web Push subscription (new in
/// schema 2's lifetime: a missing table is created empty, no migration).
pub const PUSH_SUBSCRIPTIONS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("push_subscriptions");

/// user id -> [`tidings_protocol::profile::SealedProfile`] bytes: the newest sealed profile a
/// device of the user stored (new with profiles: created empty on open, no migration).
pub const PROFILES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("profiles");

/// expires at (8, big-endian) || status id (16) -> CBOR list of [`tidings_protocol::BlobId`]:
/// the media references a status held in `status.redb` counts until it expires (new with
/// status pictures: created empty on open, no migration).
pub const STATUS_MEDIA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("status_media");

/// user id -> when the operator suspended the user (milliseconds since the epoch): their
/// sessions and new mail for them are refused until resumed (`tidings-relay users suspend`;
/// created empty on open, no migration).
pub const SUSPENDED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("suspended_users");

/// user id -> until when (ms since the epoch) envelopes for a user the operator removed are
/// answered `unknown_recipient` rather than queued: the expiry of the last home record that
/// named this relay, after which no relay routes them here (created empty on open).
pub const REMOVED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("removed_users");

/// Key of an upload in [`MEDIA_UPLOADS`].
pub fn media_upload_key(user: &UserId, blob: &tidings_protocol::BlobId) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(user.as_bytes());
    key[32..].copy_from_slice(blob.as_bytes());
    key
}

/// The user and blob a [`MEDIA_UPLOADS`] key names.
pub fn media_upload_of_key(key: &[u8; 64]) -> (UserId, tidings_protocol::BlobId) {
    let mut user = [0u8; 32];
    user.copy_from_slice(&key[..32]);
    let mut blob = [0u8; 32];
    blob.copy_from_slice(&key[32..]);
    (
        UserId::from_bytes(user),
        tidings_protocol::BlobId::from_bytes(blob),
    )
}

/// Who may see a local user's presence, and when they were last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// Everyone, the allowed list, or nobody.
    pub visibility: Visibility,
    /// Who may see it under `Visibility::Contacts`.
    pub allowed: Vec<UserId>,
    /// When the user's last device left (milliseconds since the epoch).
    pub last_seen_ms: Option<u64>,
}

/// A change to a [`PresenceRecord`].
#[derive(Debug, Clone)]
pub enum PresenceChange {
    /// New visibility and allowed list.
    Settings {
        /// Who may see it.
        visibility: Visibility,
        /// The list for `Visibility::Contacts`.
        allowed: Vec<UserId>,
    },
    /// The last device left at this time.
    LastSeen(u64),
}

/// A mailbox entry that points at a blob starts with this magic, then the envelope id.
pub const BLOB_REF_MAGIC: &[u8; 4] = b"TDR1";

/// The mailbox value pointing at blob `id`.
pub fn blob_ref(id: &EnvelopeId) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..4].copy_from_slice(BLOB_REF_MAGIC);
    out[4..].copy_from_slice(id.as_bytes());
    out
}

/// The blob a mailbox value points at, if it is a reference.
pub fn parse_blob_ref(value: &[u8]) -> Option<[u8; 16]> {
    let id = value.strip_prefix(BLOB_REF_MAGIC)?;
    <[u8; 16]>::try_from(id).ok()
}

/// Key of a group descriptor version.
pub fn group_version_key(group: &GroupId, version: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(group.as_bytes());
    key[16..].copy_from_slice(&version.to_be_bytes());
    key
}

/// A short, fixed-width name for another relay in the tables.
pub fn relay_tag(relay: &libp2p::PeerId) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(relay.to_bytes());
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&digest[..16]);
    tag
}

/// A dedupe key: the sender's user id, then 16 bytes naming the envelope (its id, or for a
/// group envelope forwarded to one recipient a hash of id and recipient). Keyed by sender, so
/// someone who learns an id in advance cannot get another sender's envelope refused.
pub type SeenKey = [u8; 48];

/// Dedupe key of an envelope.
pub fn seen_key(sender: &UserId, id: &EnvelopeId) -> SeenKey {
    let mut key = [0u8; 48];
    key[..32].copy_from_slice(sender.as_bytes());
    key[32..].copy_from_slice(id.as_bytes());
    key
}

/// Dedupe key of one group envelope for one recipient (forwarded items may be retried for a
/// subset of recipients, so the envelope id alone cannot say who has it).
pub fn delivery_key(sender: &UserId, id: &EnvelopeId, user: &UserId) -> SeenKey {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(id.as_bytes());
    hasher.update(user.as_bytes());
    let digest = hasher.finalize();
    let mut key = [0u8; 48];
    key[..32].copy_from_slice(sender.as_bytes());
    key[32..].copy_from_slice(&digest[..16]);
    key
}

/// Prefix of the dedupe tables' names.
pub const SEEN_PREFIX: &str = "seen_by_sender.";

/// Prefix of the dedupe tables of earlier versions, keyed by bare envelope id.
pub const LEGACY_SEEN_PREFIX: &str = "seen.";

/// Dedupe tables rotate by generation; each holds [`SeenKey`] -> [`SeenMark`] (16 bytes).
pub fn seen_table(generation: u64) -> String {
    format!("{SEEN_PREFIX}{generation}")
}

/// What the relay knows about one registered user (their devices are [`DeviceRecord`]s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// When the user's first device registered here.
    pub registered_at_ms: u64,
    /// The newest home record the user gave us (naming us, or where they moved).
    #[serde(default)]
    pub home: Option<HomeRecord>,
    /// The newest record naming this relay (kept after a move, to prove the handoff).
    #[serde(default)]
    pub here: Option<HomeRecord>,
}

impl UserRecord {
    /// Whether the user's home is the relay with peer id `self_peer`.
    pub fn is_home(&self, self_peer: &str) -> bool {
        self.home
            .as_ref()
            .is_none_or(|home| home.relay == self_peer)
    }
}

/// What the relay knows about one registered device of a user homed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The account's certificate of the device.
    pub cert: DeviceCert,
    /// When the device registered here.
    pub registered_at_ms: u64,
    /// The device's Olm identity key, once uploaded.
    pub identity: Option<IdentityKey>,
    /// The device's current fallback key, once uploaded.
    pub fallback: Option<SignedPreKey>,
    /// When the device's last subscribed session ended, if one did.
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
}

/// Key of a user's device in [`USER_DEVICES`].
pub fn user_device_key(user: &UserId, device: &DeviceId) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(user.as_bytes());
    key[32..].copy_from_slice(device.as_bytes());
    key
}

/// The device a [`USER_DEVICES`] key names.
pub fn device_of_key(key: &[u8; 64]) -> DeviceId {
    let mut device = [0u8; 32];
    device.copy_from_slice(&key[32..]);
    DeviceId::from_bytes(device)
}

/// What the forwarder needs to know of an outbox entry, without its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxMeta {
    /// Who sent it (a local user, told if it bounces).
    pub sender: UserId,
    /// Who it is for.
    pub recipient: UserId,
    /// Its envelope id.
    pub id: EnvelopeId,
    /// When this relay accepted it.
    pub accepted_at_ms: u64,
}

impl OutboxMeta {
    /// Fixed-width encoding.
    pub fn to_bytes(self) -> [u8; 88] {
        let mut out = [0u8; 88];
        out[..32].copy_from_slice(self.sender.as_bytes());
        out[32..64].copy_from_slice(self.recipient.as_bytes());
        out[64..80].copy_from_slice(self.id.as_bytes());
        out[80..].copy_from_slice(&self.accepted_at_ms.to_be_bytes());
        out
    }

    /// Decodes [`OutboxMeta::to_bytes`].
    pub fn from_bytes(bytes: &[u8; 88]) -> Self {
        let mut sender = [0u8; 32];
        sender.copy_from_slice(&bytes[..32]);
        let mut recipient = [0u8; 32];
        recipient.copy_from_slice(&bytes[32..64]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[64..80]);
        Self {
            sender: UserId::from_bytes(sender),
            recipient: UserId::from_bytes(recipient),
            id: EnvelopeId::from_bytes(id),
            accepted_at_ms: u64_from(&bytes[80..]),
        }
    }
}

/// Where a device's mailbox stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Last sequence number assigned (0: none yet).
    pub head: u64,
    /// Last sequence number the device acked (everything up to it is deleted).
    pub acked: u64,
}

impl Cursor {
    /// Fixed-width encoding.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.head.to_be_bytes());
        out[8..].copy_from_slice(&self.acked.to_be_bytes());
        out
    }

    /// Decodes [`Cursor::to_bytes`].
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let (head, acked) = bytes.split_at(8);
        Self {
            head: u64_from(head),
            acked: u64_from(acked),
        }
    }

    /// Envelopes stored and not yet acked.
    pub fn pending(self) -> u64 {
        self.head.saturating_sub(self.acked)
    }
}

fn u64_from(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(array)
}

/// What the dedupe table remembers of an envelope id: a fingerprint of its content (the
/// start of the sender's signature, which differs for different content) and when it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenMark {
    /// First 8 bytes of the envelope's signature.
    pub fingerprint: [u8; 8],
    /// When the relay stored it.
    pub at_ms: u64,
}

impl SeenMark {
    /// Fixed-width encoding.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.fingerprint);
        out[8..].copy_from_slice(&self.at_ms.to_be_bytes());
        out
    }

    /// Decodes [`SeenMark::to_bytes`].
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&bytes[..8]);
        Self {
            fingerprint,
            at_ms: u64_from(&bytes[8..]),
        }
    }
}

/// Mailbox key: device id then big-endian sequence number, so a device's mailbox is one
/// range (schema 1 keyed it by user id, the same 32 bytes).
pub fn mailbox_key(device: &DeviceId, seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(device.as_bytes());
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Sequence number of a mailbox key.
pub fn mailbox_seq(key: &[u8; 40]) -> u64 {
    u64_from(&key[32..])
}

/// One-time key key: device id then the curve25519 key.
pub fn one_time_key_key(device: &DeviceId, curve25519: &[u8; 32]) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(device.as_bytes());
    key[32..].copy_from_slice(curve25519);
    key
}

/// The fingerprint kept for dedupe.
pub fn fingerprint(envelope: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    let sig_start = envelope.len().saturating_sub(64);
    let tail = &envelope[sig_start..];
    let n = tail.len().min(8);
    out[..n].copy_from_slice(&tail[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_records_round_trip() {
        let cursor = Cursor { head: 9, acked: 3 };
        assert_eq!(Cursor::from_bytes(&cursor.to_bytes()), cursor);
        assert_eq!(cursor.pending(), 6);
        let mark = SeenMark {
            fingerprint: [1, 2, 3, 4, 5, 6, 7, 8],
            at_ms: 77,
        };
        assert_eq!(SeenMark::from_bytes(&mark.to_bytes()), mark);
        let meta = OutboxMeta {
            sender: UserId::from_bytes([1; 32]),
            recipient: UserId::from_bytes([2; 32]),
            id: EnvelopeId::from_bytes([3; 16]),
            accepted_at_ms: 4,
        };
        assert_eq!(OutboxMeta::from_bytes(&meta.to_bytes()), meta);
    }

    #[test]
    fn mailbox_keys_sort_by_device_then_sequence() {
        let device = DeviceId::from_bytes([5; 32]);
        let a = mailbox_key(&device, 2);
        let b = mailbox_key(&device, 256);
        assert!(a < b);
        assert_eq!(mailbox_seq(&b), 256);
    }
}
