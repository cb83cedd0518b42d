//! What a mailbox holds: envelopes, and bounces (the relay's notice that an envelope a user
//! sent could not be delivered).

use serde::{Deserialize, Serialize};

use crate::{
    codec::{self, DecodeError},
    envelope::{ENVELOPE_MAGIC, RawEnvelope},
    errors::ErrorAnswer,
    ids::{EnvelopeId, UserId},
    limits::MAX_ENVELOPE_BYTES,
};

const BOUNCE_MAGIC: &[u8; 4] = b"TDB1";

/// An envelope the relay accepted from this user but could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounce {
    /// The envelope's id.
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// Who it was for.
    #[serde(rename = "t")]
    pub to: UserId,
    /// Why it failed.
    #[serde(rename = "r")]
    pub reason: ErrorAnswer,
}

/// One mailbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxItem {
    /// An envelope for the user.
    #[serde(rename = "e")]
    Envelope(RawEnvelope),
    /// A notice that something the user sent failed.
    #[serde(rename = "b")]
    Bounce(Bounce),
}

impl MailboxItem {
    /// The bytes a relay stores: envelopes as they are, bounces behind their own magic.
    pub fn to_stored(&self) -> Vec<u8> {
        match self {
            MailboxItem::Envelope(raw) => raw.as_bytes().to_vec(),
            MailboxItem::Bounce(bounce) => {
                let mut bytes = BOUNCE_MAGIC.to_vec();
                codec::encode_into(bounce, &mut bytes);
                bytes
            }
        }
    }

    /// Reads back what [`MailboxItem::to_stored`] wrote.
    pub fn from_stored(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        if bytes.starts_with(ENVELOPE_MAGIC) {
            return Ok(MailboxItem::Envelope(RawEnvelope::from_bytes(bytes)));
        }
        match bytes.strip_prefix(BOUNCE_MAGIC) {
            Some(body) => Ok(MailboxItem::Bounce(codec::decode(
                body,
                MAX_ENVELOPE_BYTES,
            )?)),
            None => Err(DecodeError::BadMagic),
        }
    }
}
