//! Arbitrary bytes fed to every decoder of this crate give typed errors, never a panic.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use proptest::prelude::*;
use tidings_keys::{Identity, OlmAccount, OlmSession, PeerSessions, StoreKey};
use tidings_protocol::{KeyBundle, content::OlmBody};

/// A fixed store key.
fn key() -> StoreKey {
    StoreKey::from_bytes([7; 32])
}

/// A real stored session list, to mutate.
fn stored_sessions() -> Vec<u8> {
    let bob = Identity::generate();
    let mut bob_olm = OlmAccount::new();
    let bundle = KeyBundle {
        cert: bob.cert().clone(),
        identity: bob_olm.identity_key(&bob),
        prekey: bob_olm.generate_one_time_keys(&bob, 1).remove(0),
    };
    let mut sessions = PeerSessions::new();
    sessions.add(
        OlmAccount::new()
            .create_outbound_session(&bob.user_id(), &bundle)
            .unwrap(),
    );
    sessions.to_bytes(&key())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = PeerSessions::from_bytes(&bytes, &key());
    }

    #[test]
    fn unpickle_never_panics(text in ".{0,512}", bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = OlmAccount::unpickle(&text, &key());
        let _ = OlmSession::unpickle(&text, &key());
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = OlmAccount::unpickle(&lossy, &key());
        let _ = OlmSession::unpickle(&lossy, &key());
        let mut prefixed = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA|".to_owned();
        prefixed.push_str(&text);
        let _ = OlmSession::unpickle(&prefixed, &key());
    }

    #[test]
    fn mutated_stored_sessions_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = stored_sessions();
        for (index, mask) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= mask;
        }
        let _ = PeerSessions::from_bytes(&bytes, &key());
    }

    #[test]
    fn decrypting_arbitrary_bodies_never_panics(
        message_type in 0u8..3,
        ciphertext in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let sender = Identity::generate();
        let sender_olm = OlmAccount::new();
        let body = OlmBody {
            message_type,
            ciphertext,
            sender_keys: Some(sender_olm.sender_keys(&sender)),
        };
        let mut account = OlmAccount::new();
        prop_assert!(PeerSessions::new().decrypt(&mut account, &sender.address(), &body).is_err());
    }
}
