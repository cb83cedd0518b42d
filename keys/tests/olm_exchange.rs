//! Olm between two devices: opening sessions from key bundles, conversations, restarts, forged sender keys and replays.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use tidings_keys::{Identity, OlmAccount, OlmError, PeerSessions, SenderKeysError, StoreKey};
use tidings_protocol::{IdentityKey, KeyBundle, content::OlmBody};

struct Device {
    identity: Identity,
    olm: OlmAccount,
}

impl Device {
    fn new() -> Self {
        Self {
            identity: Identity::generate(),
            olm: OlmAccount::new(),
        }
    }

    /// A bundle as a relay would hand it out: one one-time key, or the fallback key.
    fn bundle(&mut self, fallback: bool) -> KeyBundle {
        let prekey = if fallback {
            self.olm.rotate_fallback_key(&self.identity)
        } else {
            self.olm
                .generate_one_time_keys(&self.identity, 1)
                .pop()
                .unwrap()
        };
        KeyBundle {
            cert: self.identity.cert().clone(),
            identity: self.olm.identity_key(&self.identity),
            prekey,
        }
    }

    fn send(&self, sessions: &mut PeerSessions, text: &str) -> OlmBody {
        sessions
            .encrypt(text.as_bytes(), &self.olm.sender_keys(&self.identity))
            .unwrap()
            .unwrap()
    }

    fn receive(
        &mut self,
        sessions: &mut PeerSessions,
        from: &Device,
        body: &OlmBody,
    ) -> Result<String, OlmError> {
        let plaintext = sessions.decrypt(&mut self.olm, &from.identity.address(), body)?;
        Ok(String::from_utf8(plaintext).unwrap())
    }
}

/// Alice opens a session to Bob from his bundle and sends one pre-key message.
fn opened(fallback: bool) -> (Device, Device, PeerSessions, PeerSessions, OlmBody) {
    let alice = Device::new();
    let mut bob = Device::new();
    let bundle = bob.bundle(fallback);
    let mut alice_to_bob = PeerSessions::new();
    alice_to_bob.add(
        alice
            .olm
            .create_outbound_session(&bob.identity.user_id(), &bundle)
            .unwrap(),
    );
    let first = alice.send(&mut alice_to_bob, "hello Bob");
    (alice, bob, alice_to_bob, PeerSessions::new(), first)
}

#[test]
fn a_conversation_both_ways_survives_a_restart() {
    let (mut alice, mut bob, mut alice_to_bob, mut bob_from_alice, first) = opened(false);
    assert_eq!(first.message_type, 0);
    assert_eq!(
        first.sender_keys,
        Some(alice.olm.sender_keys(&alice.identity))
    );

    // Alice keeps talking before Bob answers: still pre-key messages, same session.
    let second = alice.send(&mut alice_to_bob, "are you there?");
    assert_eq!(second.message_type, 0);
    assert_eq!(
        bob.receive(&mut bob_from_alice, &alice, &first).unwrap(),
        "hello Bob"
    );
    assert_eq!(
        bob.receive(&mut bob_from_alice, &alice, &second).unwrap(),
        "are you there?"
    );
    assert_eq!(bob_from_alice.len(), 1);

    // Bob answers on the session Alice opened: normal messages, no sender keys.
    for round in 0..3 {
        let reply = bob.send(&mut bob_from_alice, &format!("reply {round}"));
        assert_eq!(
            (reply.message_type, reply.sender_keys.is_some()),
            (1, false)
        );
        assert_eq!(
            alice.receive(&mut alice_to_bob, &bob, &reply).unwrap(),
            format!("reply {round}")
        );
        let answer = alice.send(&mut alice_to_bob, &format!("answer {round}"));
        assert_eq!(answer.message_type, 1);
        assert_eq!(
            bob.receive(&mut bob_from_alice, &alice, &answer).unwrap(),
            format!("answer {round}")
        );
    }

    // Restart both: the identity from its key file, the Olm state from pickles.
    let dir = tempfile::tempdir().unwrap();
    let (mut alice, mut alice_to_bob) = restart(alice, alice_to_bob, &dir.path().join("alice"));
    let (mut bob, mut bob_from_alice) = restart(bob, bob_from_alice, &dir.path().join("bob"));

    // Out of order after the restart: two messages from Alice, delivered in reverse.
    let late = alice.send(&mut alice_to_bob, "sent first");
    let early = alice.send(&mut alice_to_bob, "sent second");
    assert_eq!(
        bob.receive(&mut bob_from_alice, &alice, &early).unwrap(),
        "sent second"
    );
    assert_eq!(
        bob.receive(&mut bob_from_alice, &alice, &late).unwrap(),
        "sent first"
    );
    let reply = bob.send(&mut bob_from_alice, "after restart");
    assert_eq!(
        alice.receive(&mut alice_to_bob, &bob, &reply).unwrap(),
        "after restart"
    );
}

fn restart(
    device: Device,
    sessions: PeerSessions,
    key_file: &std::path::Path,
) -> (Device, PeerSessions) {
    device.identity.save(key_file, None).unwrap();
    let store_key = device.identity.store_key();
    let account = device.olm.pickle(store_key);
    let stored = sessions.to_bytes(store_key);
    drop((device, sessions));

    let identity = Identity::load(key_file, None).unwrap();
    let olm = OlmAccount::unpickle(&account, identity.store_key()).unwrap();
    let sessions = PeerSessions::from_bytes(&stored, identity.store_key()).unwrap();
    assert!(matches!(
        PeerSessions::from_bytes(&stored, &StoreKey::from_bytes([0; 32])),
        Err(OlmError::Pickle(_))
    ));
    (Device { identity, olm }, sessions)
}

#[test]
fn forged_sender_keys_are_rejected_and_leave_the_one_time_key_usable() {
    let (alice, mut bob, _, mut bob_from_alice, genuine) = opened(false);
    let mallory = Device::new();

    let mut forged = genuine.clone();
    forged.sender_keys = Some(mallory.olm.sender_keys(&mallory.identity));
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &alice, &forged),
        Err(OlmError::ForgedSenderKeys(SenderKeysError::WrongAddress))
    ));

    // Alice's real certificate, but an identity key that did not build this message.
    let mut keys = alice.olm.sender_keys(&alice.identity);
    keys.identity = IdentityKey::sign(alice.identity.device_key(), [9; 32]);
    forged.sender_keys = Some(keys.clone());
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &alice, &forged),
        Err(OlmError::ForgedSenderKeys(
            SenderKeysError::IdentityKeyMismatch
        ))
    ));

    // The right identity key, vouched for by Mallory's device.
    keys.identity = IdentityKey::sign(
        mallory.identity.device_key(),
        alice.olm.sender_keys(&alice.identity).identity.curve25519,
    );
    forged.sender_keys = Some(keys.clone());
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &alice, &forged),
        Err(OlmError::ForgedSenderKeys(SenderKeysError::WrongDevice))
    ));

    // Mallory's signature pasted under Alice's device id.
    keys.identity.device = alice.identity.device_id();
    forged.sender_keys = Some(keys.clone());
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &alice, &forged),
        Err(OlmError::ForgedSenderKeys(SenderKeysError::BadIdentityKey(
            _
        )))
    ));

    let mut keys = alice.olm.sender_keys(&alice.identity);
    keys.cert.issued_at_ms += 1;
    forged.sender_keys = Some(keys);
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &alice, &forged),
        Err(OlmError::ForgedSenderKeys(SenderKeysError::BadCert(_)))
    ));

    forged.sender_keys = None;
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &alice, &forged),
        Err(OlmError::MissingSenderKeys)
    ));

    // The genuine message, claimed by the wrong sender address.
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &mallory, &genuine),
        Err(OlmError::ForgedSenderKeys(SenderKeysError::WrongAddress))
    ));

    assert!(bob_from_alice.is_empty());
    assert_eq!(
        bob.receive(&mut bob_from_alice, &alice, &genuine).unwrap(),
        "hello Bob"
    );
}

#[test]
fn a_replayed_pre_key_message_is_an_error() {
    let (alice, mut bob, _, mut bob_from_alice, first) = opened(false);
    assert_eq!(
        bob.receive(&mut bob_from_alice, &alice, &first).unwrap(),
        "hello Bob"
    );
    // While the session exists: its message key is used up.
    assert!(matches!(
        bob.receive(&mut bob_from_alice, &alice, &first),
        Err(OlmError::Decryption(_))
    ));
    // After the session is lost: the one-time key is gone.
    assert!(matches!(
        bob.receive(&mut PeerSessions::new(), &alice, &first),
        Err(OlmError::UnknownOneTimeKey)
    ));
}

#[test]
fn a_fallback_key_session_works_and_its_replay_repeats_the_plaintext() {
    let (mut alice, mut bob, mut alice_to_bob, mut bob_from_alice, first) = opened(true);
    assert_eq!(
        bob.receive(&mut bob_from_alice, &alice, &first).unwrap(),
        "hello Bob"
    );
    let reply = bob.send(&mut bob_from_alice, "hi");
    assert_eq!(
        alice.receive(&mut alice_to_bob, &bob, &reply).unwrap(),
        "hi"
    );
    // Documented Olm behaviour: fallback keys are reusable, so a replay into a fresh session
    // list opens a second session. Callers dedupe by envelope id.
    assert_eq!(
        bob.receive(&mut PeerSessions::new(), &alice, &first)
            .unwrap(),
        "hello Bob"
    );
}

#[test]
fn bad_bundles_and_unknown_messages_are_typed_errors() {
    let alice = Device::new();
    let mut bob = Device::new();
    let bundle = bob.bundle(false);
    assert!(matches!(
        alice
            .olm
            .create_outbound_session(&alice.identity.user_id(), &bundle),
        Err(OlmError::InvalidBundle(_))
    ));
    let mut swapped = bundle.clone();
    swapped.identity = alice.olm.identity_key(&alice.identity);
    assert!(matches!(
        alice
            .olm
            .create_outbound_session(&bob.identity.user_id(), &swapped),
        Err(OlmError::InvalidBundle(_))
    ));

    let (mut alice, mut bob, mut alice_to_bob, _, first) = opened(false);
    let mut sessions = PeerSessions::new();
    let mut body = first.clone();
    body.message_type = 2;
    assert!(matches!(
        bob.receive(&mut sessions, &alice, &body),
        Err(OlmError::UnknownMessageType(2))
    ));
    body.message_type = 1;
    body.ciphertext = vec![3, 1, 2];
    assert!(matches!(
        bob.receive(&mut sessions, &alice, &body),
        Err(OlmError::MalformedMessage(_))
    ));

    // A normal message needs a session; one from an unknown session matches none.
    bob.receive(&mut sessions, &alice, &first).unwrap();
    let reply = bob.send(&mut sessions, "reply");
    alice.receive(&mut alice_to_bob, &bob, &reply).unwrap();
    let normal = alice.send(&mut alice_to_bob, "normal");
    assert!(matches!(
        bob.receive(&mut PeerSessions::new(), &alice, &normal),
        Err(OlmError::NoSession)
    ));
    let (_, _, mut unrelated, _, _) = opened(false);
    assert!(matches!(
        alice.receive(&mut unrelated, &bob, &reply),
        Err(OlmError::NoMatchingSession { tried: 1 })
    ));
}

#[test]
fn simultaneous_sessions_converge_and_the_list_is_capped() {
    let mut alice = Device::new();
    let mut bob = Device::new();
    let (alice_bundle, bob_bundle) = (alice.bundle(false), bob.bundle(false));
    let mut alice_to_bob = PeerSessions::new();
    let mut bob_to_alice = PeerSessions::new();
    alice_to_bob.add(
        alice
            .olm
            .create_outbound_session(&bob.identity.user_id(), &bob_bundle)
            .unwrap(),
    );
    bob_to_alice.add(
        bob.olm
            .create_outbound_session(&alice.identity.user_id(), &alice_bundle)
            .unwrap(),
    );
    let from_alice = alice.send(&mut alice_to_bob, "from alice");
    let from_bob = bob.send(&mut bob_to_alice, "from bob");
    assert_eq!(
        bob.receive(&mut bob_to_alice, &alice, &from_alice).unwrap(),
        "from alice"
    );
    assert_eq!(
        alice.receive(&mut alice_to_bob, &bob, &from_bob).unwrap(),
        "from bob"
    );
    assert_eq!((alice_to_bob.len(), bob_to_alice.len()), (2, 2));
    for round in 0..3 {
        let text = format!("round {round}");
        let body = alice.send(&mut alice_to_bob, &text);
        assert_eq!(bob.receive(&mut bob_to_alice, &alice, &body).unwrap(), text);
        let body = bob.send(&mut bob_to_alice, &text);
        assert_eq!(alice.receive(&mut alice_to_bob, &bob, &body).unwrap(), text);
    }

    for _ in 0..tidings_keys::olm::MAX_PEER_SESSIONS + 2 {
        let bundle = bob.bundle(false);
        alice_to_bob.add(
            alice
                .olm
                .create_outbound_session(&bob.identity.user_id(), &bundle)
                .unwrap(),
        );
    }
    assert_eq!(alice_to_bob.len(), tidings_keys::olm::MAX_PEER_SESSIONS);
}
