//! End-to-end content: what clients put inside envelope bodies. Relays never decode these.

use serde::{Deserialize, Serialize};

use crate::{
    card::ContactCard,
    certs::{DeviceCert, IdentityKey},
    codec::{self, BoundedVec, DecodeError},
    ids::{Address, EnvelopeId, GroupId, UserId},
    limits::{MAX_ENVELOPE_BYTES, MAX_RECEIPT_IDS, MAX_TEXT_BYTES},
    media::MediaMessage,
};

/// Longest contact name one device tells the others of its account about.
pub const MAX_CONTACT_NAME_BYTES: usize = 256;

/// Most groups one [`Payload::Groups`] names (more go in several).
pub const MAX_SYNC_GROUPS: usize = 512;

/// Most messages one [`Payload::History`] carries (more go in several).
pub const MAX_HISTORY_ITEMS: usize = 64;

/// The body of a pairwise envelope: one Olm message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OlmBody {
    /// Olm message type: 0 for a pre-key message, 1 for a normal one.
    #[serde(rename = "t")]
    pub message_type: u8,
    /// The Olm ciphertext.
    #[serde(rename = "c", with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// On pre-key messages: the sender device's certificate and Olm identity key, so the
    /// recipient can check who is opening the session without a round trip.
    #[serde(rename = "s")]
    pub sender_keys: Option<SenderKeys>,
}

/// Proof that an Olm identity key belongs to a device of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderKeys {
    /// Account's certificate for the device.
    #[serde(rename = "c")]
    pub cert: DeviceCert,
    /// Device's Olm identity key.
    #[serde(rename = "i")]
    pub identity: IdentityKey,
}

impl OlmBody {
    /// Encodes the body for an envelope.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes an envelope body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_ENVELOPE_BYTES)
    }
}

/// Whether a receipt says delivered (✓✓) or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReceiptStatus {
    /// The recipient's device has stored the message.
    #[serde(rename = "d")]
    Delivered,
    /// The recipient has seen the message.
    #[serde(rename = "r")]
    Read,
}

/// The body of a group envelope: one Megolm message of the sender's session for the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MegolmBody {
    /// Which of the sender's Megolm sessions (vodozemac session id).
    #[serde(rename = "s")]
    pub session_id: String,
    /// The Megolm message.
    #[serde(rename = "c", with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl MegolmBody {
    /// Encodes the body for an envelope.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes an envelope body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let body: Self = codec::decode(bytes, MAX_ENVELOPE_BYTES)?;
        if body.session_id.len() > 128 {
            return Err(DecodeError::Invalid {
                field: "session_id",
                reason: "too long",
            });
        }
        Ok(body)
    }
}

/// The plaintext of a group message, bound to its envelope and group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSealed {
    /// The envelope id.
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// The sending device.
    #[serde(rename = "f")]
    pub from: Address,
    /// The group.
    #[serde(rename = "g")]
    pub group: GroupId,
    /// The content.
    #[serde(rename = "p")]
    pub payload: Payload,
}

impl GroupSealed {
    /// Encodes the plaintext for encryption.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a decrypted plaintext, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let sealed: Self = codec::decode(bytes, MAX_ENVELOPE_BYTES)?;
        sealed.payload.check()?;
        Ok(sealed)
    }
}

/// The decrypted content of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// A text message.
    #[serde(rename = "text")]
    Text {
        /// The text, at most [`MAX_TEXT_BYTES`] of UTF-8.
        #[serde(rename = "t")]
        text: String,
    },
    /// The key of the sender's Megolm session for a group (sent pairwise, over Olm).
    #[serde(rename = "gkey")]
    GroupKey {
        /// The group.
        #[serde(rename = "g")]
        group: GroupId,
        /// The session key (vodozemac `SessionKey` bytes).
        #[serde(rename = "k", with = "serde_bytes")]
        session_key: Vec<u8>,
    },
    /// A receipt for messages the recipient got from the sender of this receipt.
    #[serde(rename = "rcpt")]
    Receipt {
        /// Delivered or read.
        #[serde(rename = "s")]
        status: ReceiptStatus,
        /// The envelope ids it covers.
        #[serde(rename = "i")]
        ids: BoundedVec<EnvelopeId, MAX_RECEIPT_IDS>,
    },
    /// A read marker: the sender of this receipt has read every message the recipient sent
    /// in one conversation, up to and including `up_to`. One marker covers any number of
    /// messages, so reading a long backlog costs one receipt per author.
    #[serde(rename = "rdto")]
    ReadUpTo {
        /// The group conversation, or None for the 1:1 conversation between the two.
        #[serde(rename = "g")]
        group: Option<GroupId>,
        /// The newest of the recipient's messages that was read.
        #[serde(rename = "u")]
        up_to: EnvelopeId,
    },
    /// To the sender's own other devices: a copy of a text this device sent to `to`, so every
    /// device of the account shows the conversation the same.
    #[serde(rename = "sent")]
    SentText {
        /// The other side of the 1:1 conversation.
        #[serde(rename = "u")]
        to: UserId,
        /// The text, at most [`MAX_TEXT_BYTES`] of UTF-8.
        #[serde(rename = "t")]
        text: String,
    },
    /// To the sender's own other devices: this account read everything it received in `chat`
    /// up to and including `up_to` (so the other devices clear their unread count).
    #[serde(rename = "rdsync")]
    ReadMarker {
        /// The conversation.
        #[serde(rename = "c")]
        chat: Chat,
        /// The newest message read.
        #[serde(rename = "u")]
        up_to: EnvelopeId,
    },
    /// To the sender's own other devices: groups this account is in, each with the newest
    /// descriptor version held (a device that lacks them fetches the chain from its relay).
    #[serde(rename = "groups")]
    Groups {
        /// The groups.
        #[serde(rename = "g")]
        groups: BoundedVec<GroupHeld, MAX_SYNC_GROUPS>,
    },
    /// To a device that joined the account: part of the recent history, newest first.
    #[serde(rename = "hist")]
    History {
        /// The messages, newest first.
        #[serde(rename = "m")]
        messages: BoundedVec<HistoryItem, MAX_HISTORY_ITEMS>,
        /// How many messages of the whole history this and the parts before it carried.
        #[serde(rename = "d")]
        done: u32,
        /// How many the whole history has.
        #[serde(rename = "n")]
        total: u32,
    },
    /// To the sender's own other devices: the contact list changed.
    #[serde(rename = "contact")]
    Contact {
        /// What changed.
        #[serde(rename = "c")]
        change: ContactChange,
    },
    /// To the sender's contacts, group co-members and own other devices: the account
    /// published device list `version` (a device was linked or removed). Whoever holds an
    /// older list asks for it again before they next encrypt to the account, so a new
    /// device gets copies and a removed one gets no new group key.
    #[serde(rename = "devs")]
    DevicesChanged {
        /// The version of the account's new list.
        #[serde(rename = "v")]
        version: u64,
    },
    /// A photo, video or file (1:1 or group): the sealed blob and its key.
    #[serde(rename = "media")]
    Media {
        /// The media.
        #[serde(rename = "m")]
        media: Box<MediaMessage>,
    },
    /// To the sender's own other devices: a copy of the media it sent in a 1:1 conversation.
    #[serde(rename = "sentmedia")]
    SentMedia {
        /// The other side of the 1:1 conversation.
        #[serde(rename = "u")]
        to: UserId,
        /// The media.
        #[serde(rename = "m")]
        media: Box<MediaMessage>,
    },
    /// To each contact's devices and our own other devices: the key our profile is sealed
    /// under, and the profile version it opens (also the notice that a newer version is
    /// out: whoever holds an older one fetches it from our home relay).
    #[serde(rename = "profkey")]
    ProfileKey {
        /// The profile key ([`crate::profile::PROFILE_KEY_BYTES`]).
        #[serde(rename = "k", with = "serde_bytes")]
        key: Vec<u8>,
        /// The newest profile version sealed under it.
        #[serde(rename = "v")]
        version: u64,
    },
    /// The key of the sender's Megolm session for its status updates (sent pairwise, over
    /// Olm, to the devices of the status's audience).
    #[serde(rename = "stkey")]
    StatusKey {
        /// The session key (vodozemac `SessionKey` bytes).
        #[serde(rename = "k", with = "serde_bytes")]
        session_key: Vec<u8>,
    },
    /// To a status's poster only: the sender of this receipt has seen these statuses.
    #[serde(rename = "stseen")]
    StatusSeen {
        /// The status ids.
        #[serde(rename = "i")]
        ids: BoundedVec<EnvelopeId, MAX_RECEIPT_IDS>,
    },
    /// To the sender's own other devices: a status it posted (they list who saw it too).
    #[serde(rename = "stmine")]
    StatusMine {
        /// The status.
        #[serde(rename = "s")]
        status: Box<crate::status::OwnStatus>,
    },
}

/// A conversation named in a sync payload between one's own devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Chat {
    /// The 1:1 conversation with a user.
    #[serde(rename = "u")]
    Direct(UserId),
    /// A group.
    #[serde(rename = "g")]
    Group(GroupId),
}

/// One message of a 1:1 or group conversation, as one device of an account hands it to
/// another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The other side of a 1:1 conversation, or the author of a group message (the account
    /// itself for one it sent).
    #[serde(rename = "u")]
    pub peer: UserId,
    /// The group of a group message; `None`: a 1:1 message (all a release before group
    /// history sends; such a release, receiving, would show a group item in the 1:1
    /// conversation with `peer`).
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    /// The message id.
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// Sent by the account (true) or received from the peer.
    #[serde(rename = "o")]
    pub outgoing: bool,
    /// The text, at most [`MAX_TEXT_BYTES`] of UTF-8.
    #[serde(rename = "t")]
    pub text: String,
    /// When it was sent (the sender's clock, ms since the epoch).
    #[serde(rename = "s")]
    pub sent_at_ms: u64,
    /// Where it stands.
    #[serde(rename = "r")]
    pub state: HistoryState,
    /// For a media message: the media (blob, key, name; no thumbnail), so the new device can
    /// save it while its relay keeps the blob. `text` then carries a line describing it,
    /// which is what a release before media shows.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Box<MediaMessage>>,
}

/// Where a message of the history stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryState {
    /// Ours, held by the relay (✓).
    #[serde(rename = "s")]
    Sent,
    /// Ours, on a device of the peer (✓✓).
    #[serde(rename = "d")]
    Delivered,
    /// Ours read by the peer, or theirs read by us.
    #[serde(rename = "r")]
    Read,
    /// Theirs, not read yet.
    #[serde(rename = "u")]
    Unread,
}

/// A group and the newest version of its descriptor one device holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHeld {
    /// The group.
    #[serde(rename = "g")]
    pub group: GroupId,
    /// The newest descriptor version held.
    #[serde(rename = "v")]
    pub version: u64,
}

/// A change of the contact list, as one device tells the others of its account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactChange {
    /// The contact is saved under `name` (added, or renamed: one name per user).
    #[serde(rename = "set")]
    Saved {
        /// The name, at most [`MAX_CONTACT_NAME_BYTES`].
        #[serde(rename = "n")]
        name: String,
        /// The contact's card.
        #[serde(rename = "c")]
        card: ContactCard,
    },
    /// The contact of this user is removed.
    #[serde(rename = "rm")]
    Removed {
        /// Whose contact.
        #[serde(rename = "u")]
        user: UserId,
    },
}

impl Payload {
    /// Encodes the plaintext for encryption.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a decrypted plaintext, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let payload: Self = codec::decode(bytes, MAX_ENVELOPE_BYTES)?;
        payload.check()?;
        Ok(payload)
    }

    fn check(&self) -> Result<(), DecodeError> {
        let (len, max) = match self {
            Payload::Media { media } | Payload::SentMedia { media, .. } => return media.check(),
            Payload::Text { text } | Payload::SentText { text, .. } => (text.len(), MAX_TEXT_BYTES),
            Payload::History { messages, .. } => {
                for media in messages.iter().filter_map(|item| item.media.as_ref()) {
                    media.check()?;
                }
                (
                    messages
                        .iter()
                        .map(|item| item.text.len())
                        .max()
                        .unwrap_or(0),
                    MAX_TEXT_BYTES,
                )
            }
            Payload::Contact {
                change: ContactChange::Saved { name, .. },
            } => (name.len(), MAX_CONTACT_NAME_BYTES),
            Payload::ProfileKey { key, .. } if key.len() != crate::profile::PROFILE_KEY_BYTES => {
                return Err(DecodeError::Invalid {
                    field: "profile key",
                    reason: "not 32 bytes",
                });
            }
            Payload::StatusMine { status } => return status.check(),
            _ => return Ok(()),
        };
        if len > max {
            return Err(DecodeError::TooLarge { len, max });
        }
        Ok(())
    }
}

/// The plaintext that is encrypted: the payload bound to the envelope that carries it.
///
/// Olm authenticates the sending *key*, not the account that presents it; binding sender,
/// recipient and envelope id inside the ciphertext stops anyone (a relay, another account)
/// from re-sending a ciphertext under a different sender, recipient or id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The envelope id.
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// The sending device.
    #[serde(rename = "f")]
    pub from: Address,
    /// The receiving device.
    #[serde(rename = "t")]
    pub to: Address,
    /// The content.
    #[serde(rename = "p")]
    pub payload: Payload,
    /// The logical message this envelope carries one copy of (a 1:1 message travels as one
    /// envelope per device, each with its own envelope id); `None`: the envelope id.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<EnvelopeId>,
}

impl Sealed {
    /// The logical message id: what receipts and dedupe refer to.
    pub fn message_id(&self) -> EnvelopeId {
        self.message.unwrap_or(self.id)
    }

    /// Encodes the plaintext for encryption.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a decrypted plaintext, checking its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let sealed: Self = codec::decode(bytes, MAX_ENVELOPE_BYTES)?;
        sealed.payload.check()?;
        Ok(sealed)
    }
}
