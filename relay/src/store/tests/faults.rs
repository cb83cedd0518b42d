//! A disk that fails under the writer: every waiter of the failed batch gets an error,
//! nothing answered before is lost, and the store takes writes again once the disk heals.

use tidings_protocol::store::StoreError;

use super::{Account, envelope, mailbox, on_faulty_backend};
use crate::store::{Origin, StoreOutcome};

#[tokio::test]
async fn a_failed_commit_answers_every_waiter_with_an_error_and_keeps_what_was_acked() {
    let fx = on_faulty_backend();
    let switch = fx.switch.clone().unwrap();
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2).register(&fx.store).await;
    let elsewhere = Account::new(3);
    let before = vec![
        envelope(&alice, &bob, "before 1"),
        envelope(&alice, &bob, "before 2"),
        envelope(&alice, &elsewhere, "queued before"),
    ];
    let outcomes = fx
        .store
        .store_envelopes(before, Origin::Client)
        .await
        .unwrap();
    assert_eq!(outcomes[2], StoreOutcome::Queued { seq: 1 });
    fx.store.ack(bob.device(), 1).await.unwrap();

    // The disk fails: writes of every kind, queued together, are all refused.
    switch.fail();
    let during = envelope(&alice, &bob, "during");
    let (stored, acked, queued, registered) = tokio::join!(
        fx.store
            .store_envelopes(vec![during.clone()], Origin::Client),
        fx.store.ack(bob.device(), 2),
        fx.store.store_envelopes(
            vec![envelope(&alice, &elsewhere, "queued during")],
            Origin::Client
        ),
        fx.store.register(Account::new(4).cert(), None),
    );
    for error in [
        stored.unwrap_err(),
        acked.unwrap_err(),
        queued.unwrap_err(),
        registered.unwrap_err(),
    ] {
        // The failed commit's I/O error, or (for a batch after it, while the disk still
        // fails) the reopen's.
        assert!(
            error.io_error().is_some() || matches!(error, StoreError::Unavailable { .. }),
            "a disk failure is answered as one: {error:?}"
        );
    }
    // The disk is back: the same store takes the retry (the writer reopened the database).
    switch.heal();
    let retried = retry_until_stored(&fx.store, during).await;
    assert_eq!(retried, [StoreOutcome::Accepted { seq: 3 }]);
    assert_eq!(
        mailbox(&fx.store, bob.device(), 1).await,
        [(2, "before 2".to_string()), (3, "during".to_string())]
    );
    let outbox = fx.store.outbox_after(0, 10).await.unwrap();
    assert_eq!(outbox.len(), 1, "only the entry queued before the failure");
    assert!(
        fx.store
            .user(Account::new(4).user())
            .await
            .unwrap()
            .is_none()
    );

    // And everything answered survives closing and opening the file.
    let fx = fx.reopen().await;
    assert_eq!(
        mailbox(&fx.store, bob.device(), 1).await,
        [(2, "before 2".to_string()), (3, "during".to_string())]
    );
    let cursor = fx.store.cursor(bob.device()).await.unwrap();
    assert_eq!((cursor.head, cursor.acked), (3, 1));
}

/// Stores `item`, retrying while the store still reports the failure it is recovering from
/// (the first batch after healing may find the database closed by a failed reopen).
async fn retry_until_stored(
    store: &crate::store::Store,
    item: crate::store::NewEnvelope,
) -> Vec<StoreOutcome> {
    for _ in 0..50 {
        match store
            .store_envelopes(vec![item.clone()], Origin::Client)
            .await
        {
            Ok(outcomes) => return outcomes,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    panic!("the store did not recover after the disk healed");
}
