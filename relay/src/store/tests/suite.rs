//! The cases every store backend must pass, one per kind of write, through `Store`'s API.

use bytes::Bytes;
use tidings_protocol::{
    Bounce, ErrorAnswer, ErrorCode, IdentityKey, MailboxItem, SignedPreKey, presence::Visibility,
};

use super::{Account, Fixture, envelope, genesis, mailbox, unknown_group};
use crate::store::{
    ClaimOutcome, DescriptorsOutcome, GroupEnvelope, GroupOutcome, HandoffItem, KeysOutcome,
    Origin, PresenceChange, RegisterOutcome, StoreOutcome,
};

pub(super) async fn envelopes_are_stored_in_order_deduped_and_published(fx: Fixture) {
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2).register(&fx.store).await;
    let feed = fx.hub.subscribe(bob.device());
    let mut first = envelope(&alice, &bob, "one");
    first.id = SHARED_ID;
    let second = envelope(&alice, &bob, "two");
    let outcomes = fx
        .store
        .store_envelopes(vec![first.clone(), second], Origin::Client)
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            StoreOutcome::Accepted { seq: 1 },
            StoreOutcome::Accepted { seq: 2 }
        ]
    );

    // A retry is a duplicate; the same id with other bytes is refused; both store nothing.
    let mut reused = first.clone();
    reused.bytes = Bytes::from_static(b"forged");
    let outcomes = fx
        .store
        .store_envelopes(vec![first, reused], Origin::Client)
        .await
        .unwrap();
    assert_eq!(outcomes, [StoreOutcome::Duplicate, StoreOutcome::IdReused]);

    // Another sender may use the same id: dedupe is by sender and id.
    let mut same_id = envelope(&bob, &bob, "note to self");
    same_id.id = SHARED_ID;
    let outcomes = fx
        .store
        .store_envelopes(vec![same_id], Origin::Client)
        .await
        .unwrap();
    assert_eq!(outcomes, [StoreOutcome::Accepted { seq: 3 }]);

    let stored = mailbox(&fx.store, bob.device(), 1).await;
    assert_eq!(
        stored,
        [
            (1, "one".to_string()),
            (2, "two".to_string()),
            (3, "note to self".to_string())
        ]
    );
    let cursor = fx.store.cursor(bob.device()).await.unwrap();
    assert_eq!((cursor.head, cursor.acked), (3, 0));
    // Subscribers hear of each entry once it is committed.
    let published: Vec<u64> = feed
        .recent_from(1, 10, 1 << 20)
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(published, [1, 2, 3]);
}

/// An id two senders both use in the dedupe case.
const SHARED_ID: tidings_protocol::EnvelopeId = tidings_protocol::EnvelopeId::from_bytes([5; 16]);

pub(super) async fn an_ack_deletes_the_mailbox_up_to_it(fx: Fixture) {
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2).register(&fx.store).await;
    let items = ["a", "b", "c"]
        .into_iter()
        .map(|body| envelope(&alice, &bob, body))
        .collect();
    fx.store
        .store_envelopes(items, Origin::Client)
        .await
        .unwrap();
    fx.store.ack(bob.device(), 2).await.unwrap();
    assert_eq!(
        mailbox(&fx.store, bob.device(), 1).await,
        [(3, "c".to_string())]
    );
    // An ack beyond the head stops at the head; an old ack changes nothing.
    fx.store.ack(bob.device(), 99).await.unwrap();
    fx.store.ack(bob.device(), 1).await.unwrap();
    let cursor = fx.store.cursor(bob.device()).await.unwrap();
    assert_eq!((cursor.head, cursor.acked), (3, 3));
    assert!(mailbox(&fx.store, bob.device(), 1).await.is_empty());
    // Numbers go on after the acked ones.
    let outcomes = fx
        .store
        .store_envelopes(vec![envelope(&alice, &bob, "d")], Origin::Client)
        .await
        .unwrap();
    assert_eq!(outcomes, [StoreOutcome::Accepted { seq: 4 }]);
}

pub(super) async fn outbox_entries_are_done_bounced_or_moved_home(fx: Fixture) {
    let alice = Account::new(1).register(&fx.store).await;
    let elsewhere = Account::new(2);
    let later_here = Account::new(3);
    let items = vec![
        envelope(&alice, &elsewhere, "forwarded"),
        envelope(&alice, &elsewhere, "bounced"),
        envelope(&alice, &later_here, "moved"),
    ];
    let ids: Vec<_> = items.iter().map(|item| item.id).collect();
    let outcomes = fx
        .store
        .store_envelopes(items, Origin::Client)
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            StoreOutcome::Queued { seq: 1 },
            StoreOutcome::Queued { seq: 2 },
            StoreOutcome::Queued { seq: 3 }
        ]
    );
    let queued = fx.store.outbox_after(0, 10).await.unwrap();
    assert_eq!(
        queued.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(queued[0].1.recipient, elsewhere.user());
    assert_eq!(queued[0].1.sender, alice.user());
    let bodies = fx.store.outbox_bodies(ids.clone()).await.unwrap();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0], (ids[0], Bytes::from_static(b"forwarded")));

    // The other relay committed the first: it is gone, and so is its body.
    fx.store.outbox_done(vec![1]).await.unwrap();
    // The second is given up on: alice finds a bounce naming it in her mailbox.
    let reason = ErrorAnswer::new(ErrorCode::Unavailable, "nobody answers");
    fx.store.bounce(2, reason.clone()).await.unwrap();
    // The third's recipient registers here: it moves into their mailbox.
    let later_here = later_here.register(&fx.store).await;
    fx.store.outbox_to_mailbox(vec![3]).await.unwrap();

    assert!(fx.store.outbox_after(0, 10).await.unwrap().is_empty());
    assert!(
        fx.store
            .outbox_bodies(vec![ids[0]])
            .await
            .unwrap()
            .is_empty()
    );
    let bounces = fx.store.mailbox_range(alice.device(), 1, 10, 1 << 20).await;
    let bounces = bounces.unwrap();
    assert_eq!(bounces.len(), 1);
    match MailboxItem::from_stored(bounces[0].1.to_vec()).unwrap() {
        MailboxItem::Bounce(Bounce {
            id,
            to,
            reason: why,
        }) => {
            assert_eq!((id, to), (ids[1], elsewhere.user()));
            assert_eq!(why.code, reason.code);
        }
        other => panic!("not a bounce: {other:?}"),
    }
    assert_eq!(
        mailbox(&fx.store, later_here.device(), 1).await,
        [(1, "moved".to_string())]
    );
    // Outbox numbers are not reused after their entries are gone.
    let outcomes = fx
        .store
        .store_envelopes(vec![envelope(&alice, &elsewhere, "next")], Origin::Client)
        .await
        .unwrap();
    assert_eq!(outcomes, [StoreOutcome::Queued { seq: 4 }]);
}

pub(super) async fn users_register_and_upload_and_hand_out_keys(fx: Fixture) {
    let alice = Account::new(1);
    let outcome = fx.store.register(alice.cert(), Some(1)).await.unwrap();
    assert_eq!(
        outcome,
        RegisterOutcome::Registered {
            new: true,
            one_time_keys: 0
        }
    );
    // Registering again is no new account; the cap counts accounts, not devices.
    let again = fx.store.register(alice.cert(), Some(1)).await.unwrap();
    assert_eq!(
        again,
        RegisterOutcome::Registered {
            new: false,
            one_time_keys: 0
        }
    );
    let bob = Account::new(2);
    let capped = fx.store.register(bob.cert(), Some(1)).await.unwrap();
    assert_eq!(capped, RegisterOutcome::AccountLimit);
    // Alice's device under another account is taken.
    let thief = Account {
        key: Account::new(3).key,
        device_key: Account::new(1).device_key,
    };
    let taken = fx.store.register(thief.cert(), None).await.unwrap();
    assert_eq!(taken, RegisterOutcome::DeviceTaken);
    assert_eq!(
        fx.store.device_user(alice.device()).await.unwrap(),
        Some(alice.user())
    );

    let identity = IdentityKey::sign(&alice.device_key, [9; 32]);
    let one_time: Vec<SignedPreKey> = (0..3u8)
        .map(|n| SignedPreKey::sign(&alice.device_key, [n; 32], false))
        .collect();
    let fallback = SignedPreKey::sign(&alice.device_key, [42; 32], true);
    let uploaded = fx
        .store
        .upload_keys(
            alice.device(),
            Some(identity.clone()),
            one_time,
            Some(fallback.clone()),
        )
        .await
        .unwrap();
    assert_eq!(uploaded, KeysOutcome::Stored { one_time_keys: 3 });
    let stranger = fx
        .store
        .upload_keys(Account::new(9).device(), None, Vec::new(), None)
        .await
        .unwrap();
    assert_eq!(stranger, KeysOutcome::NotRegistered);

    // Each claim consumes a one-time key; then the fallback is handed out.
    let mut prekeys = Vec::new();
    for _ in 0..4 {
        match fx.store.claim_bundle(alice.address()).await.unwrap() {
            ClaimOutcome::Bundle(bundle) => {
                assert_eq!(bundle.identity, identity);
                assert_eq!(bundle.cert, alice.cert());
                prekeys.push(bundle.prekey);
            }
            other => panic!("no bundle: {other:?}"),
        }
    }
    prekeys[..3].sort_by_key(|key| key.curve25519);
    assert_eq!(
        prekeys
            .iter()
            .map(|key| key.curve25519[0])
            .collect::<Vec<_>>(),
        [0, 1, 2, 42]
    );
    assert_eq!(
        fx.store.one_time_key_count(alice.device()).await.unwrap(),
        0
    );
    assert_eq!(
        fx.store.claim_bundle(bob.address()).await.unwrap(),
        ClaimOutcome::UnknownUser
    );
    let record = fx.store.device(alice.device()).await.unwrap().unwrap();
    assert_eq!(record.fallback, Some(fallback));
    assert_eq!(fx.store.users().await.unwrap().len(), 1);
}

pub(super) async fn group_envelopes_are_checked_and_fanned_out(fx: Fixture) {
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2).register(&fx.store).await;
    let carol = Account::new(3).register(&fx.store).await;
    let elsewhere = Account::new(4);
    let v1 = genesis(&alice, &[bob.user(), elsewhere.user()]);
    let group = v1.descriptor.group;
    let created = GroupEnvelope {
        id: tidings_protocol::EnvelopeId::random(),
        sender: alice.user(),
        sender_device: alice.device(),
        group,
        bytes: Bytes::from_static(b"genesis"),
        change: Some(v1.clone()),
    };
    let outcome = fx
        .store
        .store_group_envelope(created.clone())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        GroupOutcome::Accepted {
            local: 1,
            queued: 1
        }
    );
    assert_eq!(
        fx.store.store_group_envelope(created).await.unwrap(),
        GroupOutcome::Duplicate
    );
    assert_eq!(fx.store.group_version(group).await.unwrap(), 1);
    assert_eq!(
        fx.store.group_versions(group, 1, 10).await.unwrap(),
        std::slice::from_ref(&v1)
    );
    // Bob's mailbox holds the envelope (stored once as a blob); the other relay's member
    // has an outbox entry.
    assert_eq!(
        mailbox(&fx.store, bob.device(), 1).await,
        [(1, "genesis".to_string())]
    );
    let queued = fx.store.outbox_after(0, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].1.recipient, elsewhere.user());

    // A message of a member goes through; one of a non-member or to an unknown group not.
    let message = |sender: &Account, group, body: &'static [u8]| GroupEnvelope {
        id: tidings_protocol::EnvelopeId::random(),
        sender: sender.user(),
        sender_device: sender.device(),
        group,
        bytes: Bytes::from_static(body),
        change: None,
    };
    let outcome = fx
        .store
        .store_group_envelope(message(&bob, group, b"hello"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        GroupOutcome::Accepted {
            local: 1,
            queued: 1
        }
    );
    let outcome = fx
        .store
        .store_group_envelope(message(&carol, group, b"intruder"))
        .await
        .unwrap();
    assert_eq!(outcome, GroupOutcome::NotMember);
    let outcome = fx
        .store
        .store_group_envelope(message(&alice, unknown_group(), b"lost"))
        .await
        .unwrap();
    assert_eq!(outcome, GroupOutcome::UnknownGroup);
    assert_eq!(
        mailbox(&fx.store, alice.device(), 1).await,
        [(1, "hello".to_string())]
    );
    assert!(mailbox(&fx.store, carol.device(), 1).await.is_empty());

    // Bob's ack drops his references; alice's reference to the second still reads.
    fx.store.ack(bob.device(), 2).await.unwrap();
    assert!(mailbox(&fx.store, bob.device(), 1).await.is_empty());
    assert_eq!(
        mailbox(&fx.store, alice.device(), 1).await,
        [(1, "hello".to_string())]
    );
}

pub(super) async fn descriptors_from_other_relays_are_checked(fx: Fixture) {
    let bob = Account::new(2).register(&fx.store).await;
    let remote_admin = Account::new(5);
    let stranger = Account::new(6);

    // A group with no member here is not kept, unless this relay asked for it.
    let foreign = genesis(&remote_admin, &[stranger.user()]);
    let outcome = fx
        .store
        .store_descriptors(vec![foreign.clone()], false)
        .await
        .unwrap();
    assert_eq!(outcome, DescriptorsOutcome::NoMemberHere);
    assert_eq!(
        fx.store
            .group_version(foreign.descriptor.group)
            .await
            .unwrap(),
        0
    );
    let outcome = fx
        .store
        .store_descriptors(vec![foreign.clone()], true)
        .await
        .unwrap();
    assert_eq!(outcome, DescriptorsOutcome::Stored { version: 1 });

    // One naming bob is kept; a forged successor (signed by a non-admin) is refused.
    let with_bob = genesis(&remote_admin, &[bob.user()]);
    let group = with_bob.descriptor.group;
    let outcome = fx
        .store
        .store_descriptors(vec![with_bob.clone()], false)
        .await
        .unwrap();
    assert_eq!(outcome, DescriptorsOutcome::Stored { version: 1 });
    let forged = tidings_protocol::group::SignedDescriptor::sign(
        &bob.key,
        tidings_protocol::group::Descriptor::successor(
            &with_bob,
            bob.user(),
            "mine now".into(),
            with_bob.descriptor.members.clone(),
        ),
    );
    let outcome = fx
        .store
        .store_descriptors(vec![forged], false)
        .await
        .unwrap();
    assert!(
        matches!(outcome, DescriptorsOutcome::Rejected(_)),
        "{outcome:?}"
    );
    assert_eq!(fx.store.group_version(group).await.unwrap(), 1);
}

pub(super) async fn presence_and_handoffs_are_stored(fx: Fixture) {
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2);
    assert_eq!(
        fx.store.presence(alice.user()).await.unwrap(),
        Default::default()
    );
    fx.store
        .change_presence(
            alice.user(),
            PresenceChange::Settings {
                visibility: Visibility::Contacts,
                allowed: vec![bob.user()],
            },
        )
        .await
        .unwrap();
    fx.store
        .change_presence(alice.user(), PresenceChange::LastSeen(1234))
        .await
        .unwrap();
    let presence = fx.store.presence(alice.user()).await.unwrap();
    assert_eq!(presence.visibility, Visibility::Contacts);
    assert_eq!(presence.allowed, [bob.user()]);
    assert_eq!(presence.last_seen_ms, Some(1234));

    // What alice's previous home hands on lands in her mailbox, deduped by id.
    let handed = envelope(&bob, &alice, "from the old home");
    let items = vec![
        HandoffItem::Envelope(handed.clone()),
        HandoffItem::Envelope(handed),
    ];
    let outcomes = fx.store.handoff_in(alice.user(), items).await.unwrap();
    assert_eq!(
        outcomes,
        [StoreOutcome::Accepted { seq: 1 }, StoreOutcome::Duplicate]
    );
    // Nothing is taken for a user who does not live here.
    let outcomes = fx
        .store
        .handoff_in(
            bob.user(),
            vec![HandoffItem::Envelope(envelope(&alice, &bob, "x"))],
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [StoreOutcome::NotHere]);
    assert_eq!(
        mailbox(&fx.store, alice.device(), 1).await,
        [(1, "from the old home".to_string())]
    );
}

pub(super) async fn what_was_answered_survives_a_reopen(fx: Fixture) {
    let alice = Account::new(1).register(&fx.store).await;
    let bob = Account::new(2).register(&fx.store).await;
    let elsewhere = Account::new(3);
    let items = vec![
        envelope(&alice, &bob, "kept"),
        envelope(&alice, &elsewhere, "queued"),
    ];
    let outcomes = fx
        .store
        .store_envelopes(items, Origin::Client)
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            StoreOutcome::Accepted { seq: 1 },
            StoreOutcome::Queued { seq: 1 }
        ]
    );
    let fx = fx.reopen().await;
    assert_eq!(
        mailbox(&fx.store, bob.device(), 1).await,
        [(1, "kept".to_string())]
    );
    assert_eq!(fx.store.outbox_after(0, 10).await.unwrap().len(), 1);
    assert!(fx.store.user(alice.user()).await.unwrap().is_some());
}
