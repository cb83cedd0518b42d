//! A relay whose disk fails answers with an error and loses nothing it accepted.
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

#[tokio::test]
async fn a_relay_whose_disk_recovers_takes_messages_again_without_a_restart() {
    let relay_dir = RelayDir::new();
    let switch = FaultSwitch::default();
    let relay = relay_dir.start_with(Some(switch.clone())).await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let mut session = alice.connect().await;
    assert_eq!(
        session.send_text("bob", "before").await.unwrap().status,
        MessageStatus::Sent
    );

    // Two failed commits in a row (the relay tries to reopen its database after each).
    switch.fail();
    for text in ["during 1", "during 2"] {
        let during = session.send_text("bob", text).await.unwrap();
        assert_eq!(during.status, MessageStatus::Pending);
    }

    // The disk is back; the same relay process accepts the retry and what comes next.
    switch.heal();
    let report = session.flush().await.unwrap();
    assert_eq!(report.sent.len(), 2, "{report:?}");
    assert_eq!(
        session.send_text("bob", "after").await.unwrap().status,
        MessageStatus::Sent
    );
    let events = bob.sync(Duration::from_secs(5)).await;
    assert_eq!(texts(&events), ["before", "during 1", "during 2", "after"]);
    relay.shutdown().await;
}
