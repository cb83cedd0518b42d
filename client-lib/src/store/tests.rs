//! The client store's API on a real redb file: what it keeps, in which order, and the typed
//! errors it answers with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tidings_protocol::{BoundedVec, ContactCard, UserId};

use super::{
    ClientStore, Conversation, MessageStatus, StoreError, outbox::Finished, tables::CONTACTS,
};

/// The store key of one identity for every test of the store (a store reopened in a test
/// opens under the same key).
pub(crate) fn test_store_key() -> &'static tidings_keys::StoreKey {
    static IDENTITY: std::sync::OnceLock<tidings_keys::Identity> = std::sync::OnceLock::new();
    IDENTITY
        .get_or_init(tidings_keys::Identity::generate)
        .store_key()
}

pub(super) fn user(byte: u8) -> UserId {
    UserId::from_bytes([byte; 32])
}

pub(super) fn card(user: UserId) -> ContactCard {
    ContactCard {
        user,
        name: None,
        relay: "relay".into(),
        addrs: BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/1".into()]).unwrap(),
    }
}

#[test]
fn meta_and_contacts_round_trip_and_a_taken_name_or_user_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
    store.set_meta("relay_addr", b"somewhere").unwrap();
    assert_eq!(store.meta("relay_addr").unwrap().unwrap(), b"somewhere");
    assert_eq!(store.meta("nothing").unwrap(), None);

    store.add_contact("bob", &card(user(2))).unwrap();
    assert!(matches!(
        store.add_contact("bob", &card(user(3))),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_contact("robert", &card(user(2))),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.contact("bob").unwrap(), Some(card(user(2))));
    assert_eq!(
        store.contact_name(&user(2)).unwrap().as_deref(),
        Some("bob")
    );
    assert_eq!(store.contacts().unwrap().len(), 1);
}

#[test]
fn queued_texts_wait_in_order_and_finish_only_under_their_own_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
    let bob = Conversation::Direct(user(2));
    let records = store
        .queue_texts(user(1), bob, vec!["one".into(), "two".into()])
        .unwrap();
    assert!(records.iter().all(|r| r.status == MessageStatus::Pending));
    let pending = store.pending(10).unwrap();
    let seqs: Vec<u64> = pending.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(pending[0].1.id, records[0].id);

    // A late answer naming another envelope leaves the entry alone.
    assert_eq!(
        store.finish(1, records[1].id, Finished::Sent).unwrap(),
        None
    );
    assert_eq!(store.pending(10).unwrap().len(), 2);
    let sent = store.finish(1, records[0].id, Finished::Sent).unwrap();
    assert_eq!(sent.unwrap().status, MessageStatus::Sent);
    let failed = store
        .finish(2, records[1].id, Finished::Failed("refused".into()))
        .unwrap();
    assert_eq!(
        failed.unwrap().status,
        MessageStatus::Failed("refused".into())
    );
    assert!(store.pending(10).unwrap().is_empty());
    let history: Vec<_> = store
        .history(&bob)
        .unwrap()
        .into_iter()
        .map(|r| (r.text, r.status))
        .collect();
    assert_eq!(
        history,
        [
            ("one".to_string(), MessageStatus::Sent),
            ("two".to_string(), MessageStatus::Failed("refused".into()))
        ]
    );

    // Outbox numbers are never reused.
    store
        .queue_texts(user(1), bob, vec!["three".into()])
        .unwrap();
    assert_eq!(store.pending(10).unwrap()[0].0, 3);
}

#[test]
fn what_was_committed_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let bob = Conversation::Direct(user(2));
    let queued = {
        let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
        store.add_contact("bob", &card(user(2))).unwrap();
        store
            .queue_texts(user(1), bob, vec!["kept".into()])
            .unwrap()
    };
    let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
    assert_eq!(store.contact("bob").unwrap(), Some(card(user(2))));
    assert_eq!(store.pending(10).unwrap()[0].1.id, queued[0].id);
    assert_eq!(store.message(&queued[0].id).unwrap().unwrap().text, "kept");
}

#[test]
fn a_record_that_does_not_decode_is_a_typed_corrupt_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
    // Sealed properly (its row, its key), so only the record inside is broken.
    let row = store.at_rest.blind_name("mallory");
    let sealed = store
        .at_rest
        .seal("contacts", row.as_bytes(), &[0xff_u8, 0x00, 0x13])
        .unwrap();
    let txn = store.db.begin_write().unwrap();
    txn.open_table(CONTACTS)
        .unwrap()
        .insert(row.as_str(), sealed.as_slice())
        .unwrap();
    txn.commit().unwrap();
    match store.contact("mallory") {
        Err(StoreError::Storage(tidings_protocol::store::StoreError::Corrupt {
            table, ..
        })) => assert_eq!(table, "contacts"),
        other => panic!("not a corrupt-record error: {other:?}"),
    }
}

/// A list of `identity`'s account naming it and `others`.
fn own_list(
    identity: &tidings_keys::Identity,
    others: &[&tidings_keys::Identity],
) -> tidings_protocol::SignedDeviceList {
    use tidings_protocol::{DeviceEntry, DeviceList};
    let entries = std::iter::once(identity)
        .chain(others.iter().copied())
        .map(|device| DeviceEntry {
            device: device.device_id(),
            name: "device".into(),
            added_at_ms: 1,
        })
        .collect();
    identity
        .sign_device_list(DeviceList::new(identity.user_id(), 1, entries).unwrap())
        .unwrap()
}

#[test]
fn sync_for_our_other_devices_is_queued_only_when_the_account_has_some() {
    use tidings_protocol::content::{ContactChange, Payload};

    use super::tables::OutboxContent;

    let dir = tempfile::tempdir().unwrap();
    let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
    let phone = tidings_keys::Identity::generate();
    let me = phone.user_id();
    store.add_contact_synced(me, "bob", &card(user(2))).unwrap();
    assert!(store.pending(16).unwrap().is_empty(), "one device: no sync");

    let laptop = phone.another_device();
    store
        .accept_device_list(&me, own_list(&phone, &[&laptop]))
        .unwrap()
        .unwrap();
    store.rename_contact(me, "bob", "robert").unwrap();
    store.remove_contact(me, "robert").unwrap();
    let queued: Vec<_> = store
        .pending(16)
        .unwrap()
        .into_iter()
        .map(|(_, entry)| (entry.to, entry.content))
        .collect();
    assert_eq!(
        queued,
        [
            (
                Conversation::Direct(me),
                OutboxContent::Encrypted(Payload::Contact {
                    change: ContactChange::Saved {
                        name: "robert".into(),
                        card: card(user(2)),
                    },
                }),
            ),
            (
                Conversation::Direct(me),
                OutboxContent::Encrypted(Payload::Contact {
                    change: ContactChange::Removed { user: user(2) },
                }),
            ),
        ]
    );
    assert!(store.contacts().unwrap().is_empty());
    assert!(matches!(
        store.remove_contact(me, "robert"),
        Err(StoreError::NotFound(_))
    ));
}
