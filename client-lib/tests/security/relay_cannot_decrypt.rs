//! The relay stores envelopes, never plaintext; the client's store seals it at rest.

use crate::common::{RelayDir, TestUser};
use tidings_client::MessageStatus;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn stored_envelopes_do_not_contain_the_plaintext() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);

    // Bob stays offline so the envelopes stay in his mailbox on the relay's disk.
    let secret = "the eagle lands at midnight, bring the blue umbrella";
    let mut session = alice.connect().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let message = session.send_text("bob", secret).await.unwrap();
        assert_eq!(message.status, MessageStatus::Sent);
        ids.push(message.id);
    }
    session.close().await;
    relay.shutdown().await;

    let database = std::fs::read(relay_dir.path().join(tidings_relay::STORE_FILE)).unwrap();
    for id in &ids {
        assert!(
            contains(&database, id.as_bytes()),
            "the envelopes must be in the file for this check to mean anything"
        );
    }
    assert!(!contains(&database, secret.as_bytes()));
    assert!(!contains(&database, b"the eagle"));
    // Alice's own history has the plaintext, read through her store's key; her store's file
    // does not (encrypted at rest), while the same search finds her envelope ids in it.
    let history = alice.client.history("bob").unwrap();
    assert!(history.iter().all(|message| message.text == secret));
    assert_eq!(history.len(), 3);
    let alice_db = std::fs::read(alice.dir.path().join(tidings_client::store::STORE_FILE)).unwrap();
    assert!(contains(&alice_db, ids[0].as_bytes()));
    assert!(!contains(&alice_db, secret.as_bytes()));
    assert!(!contains(&alice_db, b"the eagle"));
}
