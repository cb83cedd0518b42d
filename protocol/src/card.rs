//! Contact cards: a short text that tells someone who you are and where your relay is.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    codec::{self, BoundedVec, DecodeError},
    ids::UserId,
    limits::{MAX_CARD_ADDRS, MAX_CARD_TEXT_LEN, MAX_NAME_LEN},
};

/// Prefix of a contact card's text form.
pub const CARD_PREFIX: &str = "tidings:";

/// A user and their home relay, exchanged by pasting or scanning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    /// The user.
    #[serde(rename = "u")]
    pub user: UserId,
    /// A display name the user suggests (the receiver picks their own).
    #[serde(rename = "n")]
    pub name: Option<String>,
    /// The home relay's libp2p peer id (text form).
    #[serde(rename = "r")]
    pub relay: String,
    /// The home relay's listen addresses (multiaddr text).
    #[serde(rename = "a")]
    pub addrs: BoundedVec<String, MAX_CARD_ADDRS>,
}

impl fmt::Display for ContactCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CARD_PREFIX)?;
        f.write_str(&bs58::encode(codec::encode(self)).into_string())
    }
}

impl FromStr for ContactCard {
    type Err = DecodeError;

    fn from_str(text: &str) -> Result<Self, DecodeError> {
        let text = text.trim();
        if text.len() > MAX_CARD_TEXT_LEN {
            return Err(DecodeError::TooLarge {
                len: text.len(),
                max: MAX_CARD_TEXT_LEN,
            });
        }
        let body = text
            .strip_prefix(CARD_PREFIX)
            .ok_or(DecodeError::BadMagic)?;
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| DecodeError::Invalid {
                field: "card",
                reason: "not base58",
            })?;
        let card: ContactCard = codec::decode(&bytes, MAX_CARD_TEXT_LEN)?;
        if card
            .name
            .as_ref()
            .is_some_and(|name| name.len() > MAX_NAME_LEN)
        {
            return Err(DecodeError::Invalid {
                field: "name",
                reason: "too long",
            });
        }
        if card.user.verifying_key().is_err() {
            return Err(DecodeError::Invalid {
                field: "user",
                reason: "not an ed25519 key",
            });
        }
        Ok(card)
    }
}
