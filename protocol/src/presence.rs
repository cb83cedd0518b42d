//! Presence: who may see a user online or their last seen, what watchers are told, and the
//! body of a typing notice.

use serde::{Deserialize, Serialize};

use crate::{
    codec::{self, DecodeError},
    ids::UserId,
};

/// Who may see a user's presence and last seen. The user's home relay enforces it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Visibility {
    /// Anyone who asks.
    #[default]
    #[serde(rename = "e")]
    Everyone,
    /// Only the users on the list the user keeps at their home relay.
    #[serde(rename = "c")]
    Contacts,
    /// No one.
    #[serde(rename = "n")]
    Nobody,
}

impl Visibility {
    /// Whether `watcher` may see the presence of a user with this setting and `allowed` list.
    pub fn permits(self, watcher: &UserId, allowed: &[UserId]) -> bool {
        match self {
            Visibility::Everyone => true,
            Visibility::Contacts => allowed.contains(watcher),
            Visibility::Nobody => false,
        }
    }
}

/// What a watcher is told about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceState {
    /// A device of the user is connected and live.
    #[serde(rename = "on")]
    Online,
    /// No device is connected; when the last one left, if ever.
    #[serde(rename = "off")]
    Offline {
        /// Milliseconds since the Unix epoch.
        #[serde(rename = "t")]
        last_seen_ms: Option<u64>,
    },
    /// The user does not share presence with the watcher (or is not known). Says nothing
    /// about whether they are online.
    #[serde(rename = "h")]
    Hidden,
}

/// One user's presence, as pushed to a watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceReport {
    /// Whose.
    #[serde(rename = "u")]
    pub user: UserId,
    /// Their state.
    #[serde(rename = "s")]
    pub state: PresenceState,
}

/// Largest typing notice body.
pub const MAX_TYPING_BODY: usize = 16;

/// Body of a typing envelope (kind `Typing`): started or stopped. It carries no content, so
/// it is signed but not encrypted; relays never store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingBody {
    /// True when typing started, false when it stopped.
    #[serde(rename = "t")]
    pub typing: bool,
}

impl TypingBody {
    /// The body's bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a body, bounded.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_TYPING_BODY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_decides_who_sees() {
        let friend = UserId::from_bytes([1; 32]);
        let stranger = UserId::from_bytes([2; 32]);
        let allowed = [friend];
        assert!(Visibility::Everyone.permits(&stranger, &allowed));
        assert!(Visibility::Contacts.permits(&friend, &allowed));
        assert!(!Visibility::Contacts.permits(&stranger, &allowed));
        assert!(!Visibility::Nobody.permits(&friend, &allowed));
    }

    #[test]
    fn typing_bodies_round_trip_and_big_ones_are_refused() {
        let body = TypingBody { typing: true };
        assert_eq!(TypingBody::decode(&body.encode()).unwrap(), body);
        assert!(TypingBody::decode(&[0u8; 64]).is_err());
    }
}
