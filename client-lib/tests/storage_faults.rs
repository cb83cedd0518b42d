//! What a person's client does when its relay's disk fails: the message stays pending, the
//! flush says why, and it goes out once the relay is fixed. The relay's own side of disk
//! faults (error answers, nothing accepted lost, recovery without a restart) is tested in
//! `relay/tests/storage.rs` and the store's suite (`relay/src/store/tests/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{RelayDir, TestUser, texts};
use tidings_client::MessageStatus;
use tidings_relay::store::fault::FaultSwitch;

#[tokio::test]
async fn a_failed_commit_is_an_error_answer_and_nothing_accepted_is_lost() {
    let mut relay_dir = RelayDir::new();
    let switch = FaultSwitch::default();
    let relay = relay_dir.start_with(Some(switch.clone())).await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);

    let mut session = alice.connect().await;
    for text in ["before 1", "before 2"] {
        assert_eq!(
            session.send_text("bob", text).await.unwrap().status,
            MessageStatus::Sent
        );
    }

    // The disk fails: the relay refuses with a transient error; the message stays pending.
    switch.fail();
    let during = session.send_text("bob", "during").await.unwrap();
    assert_eq!(during.status, MessageStatus::Pending);
    let report = session.flush().await.unwrap();
    assert!(report.sent.is_empty());
    assert!(
        report.waiting.iter().any(|why| why.contains("storage")),
        "the refusal names the storage failure: {:?}",
        report.waiting
    );
    session.close().await;

    // The operator fixes the disk and restarts the relay; Alice's client retries.
    switch.heal();
    let address = relay.listen_addrs()[0].clone();
    relay.shutdown().await;
    relay_dir.config.listen = vec![address.to_string()];
    let relay = relay_dir.start().await;
    let mut session = alice.connect().await;
    let report = session.flush().await.unwrap();
    assert_eq!(report.sent.len(), 1);

    let mut bob_session = bob.connect().await;
    let events = bob_session.sync(Duration::from_secs(20)).await.unwrap();
    assert_eq!(texts(&events), ["before 1", "before 2", "during"]);
    relay.shutdown().await;
}
