//! Named bounds on every size and count that crosses the wire.

/// Largest encoded envelope (header, opaque body and signature) a relay accepts.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Largest frame on a client or federation stream (length prefix excluded).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Most envelopes in one `Send` request or one `Deliver` push.
pub const MAX_BATCH_ENVELOPES: usize = 256;

/// Deepest CBOR nesting any decoder follows.
pub const MAX_NESTING: usize = 16;

/// Most one-time keys in one upload.
pub const MAX_ONE_TIME_KEYS_PER_UPLOAD: usize = 100;

/// Most unclaimed one-time keys a relay keeps for one device.
pub const MAX_STORED_ONE_TIME_KEYS: usize = 200;

/// Longest invite code.
pub const MAX_INVITE_LEN: usize = 64;

/// Longest free-text detail in an error answer.
pub const MAX_ERROR_DETAIL_LEN: usize = 512;

/// Longest text of one chat message, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Most envelope ids one receipt may cover.
pub const MAX_RECEIPT_IDS: usize = 1024;

/// Most listen addresses in a contact card.
pub const MAX_CARD_ADDRS: usize = 8;

/// Longest text form of a contact card.
pub const MAX_CARD_TEXT_LEN: usize = 2048;

/// Longest display name in a contact card.
pub const MAX_NAME_LEN: usize = 64;

/// Largest encoded home record.
pub const MAX_HOME_RECORD_BYTES: usize = 2048;

/// Most members of one group.
pub const MAX_GROUP_MEMBERS: usize = 1024;

/// Longest group name, in bytes of UTF-8.
pub const MAX_GROUP_NAME_LEN: usize = 128;

/// Largest encoded signed group descriptor (fits in one envelope body).
pub const MAX_DESCRIPTOR_BYTES: usize = 60 * 1024;

/// Most descriptor versions in one federation `Descriptors` request or one client
/// `GroupVersions` answer.
pub const MAX_DESCRIPTORS_PER_REQUEST: usize = 16;

/// Most descriptor versions sent at once to bring a relay up to date.
pub const MAX_DESCRIPTOR_CHAIN: usize = 64;

/// Most users one presence watch (or renewal) names.
pub const MAX_PRESENCE_WATCH: usize = 1024;

/// Most users on the list of who may see a user's presence.
pub const MAX_PRESENCE_ALLOWED: usize = 4096;

/// Most watchers one relay-to-relay presence change names.
pub const MAX_PRESENCE_WATCHERS: usize = 1024;

/// Most devices one account's device list may name (a protocol cap; a relay may allow fewer).
pub const MAX_DEVICES_PER_ACCOUNT: usize = 32;

/// Longest device name in a device list, in bytes of UTF-8.
pub const MAX_DEVICE_NAME_LEN: usize = 64;

/// Largest encoded signed device list (the largest allowed list takes about 3.9 KiB).
pub const MAX_DEVICE_LIST_BYTES: usize = 4096;

/// Largest sealed link package one device leaves at the home relay for a device being linked.
pub const MAX_LINK_PACKAGE_BYTES: usize = 2048;
