//! What the operator's suspend and remove leave in the store.

use super::{Account, envelope, on_file};
use crate::store::{Origin, RemoveOutcome, StoreOutcome, SuspendOutcome};

#[tokio::test]
async fn a_suspension_refuses_mail_from_anywhere_and_survives_a_reopen() {
    let fx = on_file();
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2).register(&fx.store).await;
    let relay = Origin::Federation(libp2p::PeerId::random());
    let outcome = fx.store.set_suspended(bob.user(), true).await.unwrap();
    assert_eq!(outcome, SuspendOutcome::Changed(vec![bob.device()]));
    let fx = fx.reopen().await;
    for origin in [Origin::Client, relay] {
        let stored = fx
            .store
            .store_envelopes(vec![envelope(&alice, &bob, "hi")], origin)
            .await
            .unwrap();
        assert_eq!(stored, vec![StoreOutcome::Suspended]);
    }
    assert_eq!(fx.store.totals().await.unwrap().suspended_users, 1);
    let outcome = fx.store.set_suspended(bob.user(), false).await.unwrap();
    assert!(matches!(outcome, SuspendOutcome::Changed(_)));
    assert_eq!(
        fx.store.set_suspended(bob.user(), false).await.unwrap(),
        SuspendOutcome::Unchanged
    );
    let stored = fx
        .store
        .store_envelopes(vec![envelope(&alice, &bob, "hi")], Origin::Client)
        .await
        .unwrap();
    assert!(matches!(stored[0], StoreOutcome::Accepted { .. }));
}

#[tokio::test]
async fn a_removal_empties_the_user_and_a_new_registration_starts_afresh() {
    let fx = on_file();
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2).register(&fx.store).await;
    let relay = Origin::Federation(libp2p::PeerId::random());
    for origin in [Origin::Client, relay] {
        let stored = fx
            .store
            .store_envelopes(vec![envelope(&alice, &bob, "waiting")], origin)
            .await
            .unwrap();
        assert!(matches!(stored[0], StoreOutcome::Accepted { .. }));
    }
    let before = fx.store.totals().await.unwrap();
    assert_eq!((before.users, before.mailbox_entries), (2, 2));

    let RemoveOutcome::Removed(removal) = fx.store.remove_user(bob.user()).await.unwrap() else {
        panic!("bob not removed");
    };
    assert_eq!(removal.devices, vec![bob.device()]);
    assert_eq!(removal.mailbox_entries, 2);
    let after = fx.store.totals().await.unwrap();
    assert_eq!(
        (
            after.users,
            after.devices,
            after.mailbox_entries,
            after.mailbox_bytes
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(fx.store.user_usage(bob.user()).await.unwrap(), None);
    assert_eq!(fx.store.device_user(bob.device()).await.unwrap(), None);
    assert_eq!(
        fx.store.remove_user(bob.user()).await.unwrap(),
        RemoveOutcome::UnknownUser
    );
    // Another relay still routing them here is told at once; a device here has it queued
    // (the forwarder bounces it unless a newer home turns up).
    let stored = fx
        .store
        .store_envelopes(vec![envelope(&alice, &bob, "gone")], relay)
        .await
        .unwrap();
    assert_eq!(stored, vec![StoreOutcome::Removed]);
    assert!(fx.store.was_removed(bob.user()).await.unwrap());
    let stored = fx
        .store
        .store_envelopes(vec![envelope(&alice, &bob, "gone")], Origin::Client)
        .await
        .unwrap();
    assert!(matches!(stored[0], StoreOutcome::Queued { .. }));

    // Registering again is a new account, with an empty mailbox that takes mail.
    let bob = Account::new(2).register(&fx.store).await;
    assert!(!fx.store.was_removed(bob.user()).await.unwrap());
    assert!(super::mailbox(&fx.store, bob.device(), 1).await.is_empty());
    let stored = fx
        .store
        .store_envelopes(vec![envelope(&alice, &bob, "back")], Origin::Client)
        .await
        .unwrap();
    assert_eq!(stored, vec![StoreOutcome::Accepted { seq: 1 }]);
}
