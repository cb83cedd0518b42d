//! Pairwise end-to-end encryption with Olm (vodozemac): the device's Olm account, sessions, and every session with one peer device.

mod account;
mod error;
mod peer;
mod session;

pub use account::OlmAccount;
pub use error::{OlmError, SenderKeysError};
pub use peer::{MAX_PEER_SESSIONS, MAX_PEER_SESSIONS_BYTES, PeerSessions};
pub use session::OlmSession;

use vodozemac::olm::SessionConfig;

/// The Olm configuration of every session this crate creates or accepts: version 1, the Olm
/// wire format with an 8-byte MAC. vodozemac 0.11 offers version 2 (untruncated MAC) only
/// behind its `experimental-session-config` feature, and a session accepts only pre-key
/// messages of its own version, so changing this later needs both sides to agree.
const SESSION_CONFIG: SessionConfig = SessionConfig::version_1();

/// Longest pickle string accepted by an `unpickle`.
///
/// Pickles are vodozemac's encrypted pickles (AES-256-CBC + HMAC-SHA-256 under keys derived
/// from the 32-byte pickle key, then base64). An account holding vodozemac's maximum of
/// 5,000 unused one-time keys pickles to about 0.8 MB.
pub const MAX_PICKLE_LEN: usize = 4 * 1024 * 1024;

/// [`OlmBody::message_type`](tidings_protocol::content::OlmBody) of a pre-key message.
pub const PRE_KEY_MESSAGE: u8 = 0;

/// [`OlmBody::message_type`](tidings_protocol::content::OlmBody) of a normal message.
pub const NORMAL_MESSAGE: u8 = 1;

fn check_pickle_len(pickle: &str) -> Result<(), OlmError> {
    if pickle.len() > MAX_PICKLE_LEN {
        return Err(OlmError::PickleTooLarge {
            len: pickle.len(),
            max: MAX_PICKLE_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use vodozemac::base64_encode;

    use super::*;
    use crate::{Identity, store_key::StoreKey};

    #[test]
    fn debug_output_is_redacted() {
        let bob = Identity::generate();
        let mut bob_olm = OlmAccount::new();
        let curve = base64_encode(bob_olm.curve25519_key());
        assert_eq!(
            format!("{bob_olm:?}"),
            format!("OlmAccount {{ curve25519: \"{curve}\", .. }}")
        );

        let bundle = tidings_protocol::KeyBundle {
            cert: bob.cert().clone(),
            identity: bob_olm.identity_key(&bob),
            prekey: bob_olm.generate_one_time_keys(&bob, 1).remove(0),
        };
        let session = OlmAccount::new()
            .create_outbound_session(&bob.user_id(), &bundle)
            .unwrap();
        let id = session.session_id();
        assert_eq!(
            format!("{session:?}"),
            format!("OlmSession {{ session_id: \"{id}\", peer_identity_key: \"{curve}\", .. }}")
        );
        let mut sessions = PeerSessions::new();
        sessions.add(session);
        assert_eq!(
            format!("{sessions:?}"),
            format!(
                "PeerSessions {{ sessions: [OlmSession {{ session_id: \"{id}\", peer_identity_key: \"{curve}\", .. }}] }}"
            )
        );
    }

    #[test]
    fn a_full_account_pickles_within_the_bound() {
        let identity = Identity::generate();
        let mut account = OlmAccount::new();
        // vodozemac keeps at most 5,000 one-time keys.
        for _ in 0..51 {
            account.generate_one_time_keys(&identity, 100);
        }
        account.rotate_fallback_key(&identity);
        let pickle = account.pickle(&StoreKey::from_secret([1; 32]));
        assert!(pickle.len() < MAX_PICKLE_LEN, "{} bytes", pickle.len());
        let restored = OlmAccount::unpickle(&pickle, &StoreKey::from_secret([1; 32])).unwrap();
        assert_eq!(restored.curve25519_key(), account.curve25519_key());
        assert!(matches!(
            OlmAccount::unpickle(&pickle, &StoreKey::from_secret([2; 32])),
            Err(OlmError::Pickle(_))
        ));
        let oversized = "A".repeat(MAX_PICKLE_LEN + 1);
        assert!(matches!(
            OlmAccount::unpickle(&oversized, &StoreKey::from_secret([1; 32])),
            Err(OlmError::PickleTooLarge { .. })
        ));
    }

    #[test]
    fn one_time_keys_are_signed_distinct_and_capped_per_upload() {
        let identity = Identity::generate();
        let mut account = OlmAccount::new();
        let keys = account.generate_one_time_keys(&identity, 1000);
        assert_eq!(
            keys.len(),
            tidings_protocol::limits::MAX_ONE_TIME_KEYS_PER_UPLOAD
        );
        assert!(keys.iter().all(|key| key.verify().is_ok() && !key.fallback));
        let distinct: std::collections::HashSet<_> =
            keys.iter().map(|key| key.curve25519).collect();
        assert_eq!(distinct.len(), keys.len());
        let fallback = account.rotate_fallback_key(&identity);
        assert!(fallback.fallback && fallback.verify().is_ok());
        assert_ne!(account.rotate_fallback_key(&identity), fallback);
    }
}
