//! Revoking a device by publishing a list without it: its streams end, its mailbox and keys
//! go, nothing reaches it any more, and it cannot register again unless a newer list names it.

use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use tidings_protocol::{
    ErrorCode, Kind,
    client::{Request, SendOutcome},
    group::Role,
};
use tidings_relay::{STORE_FILE, store::tables};

use crate::{
    common::{
        RawDevice, TestRelay, genesis, group_envelope, member, sent, start_tweaked, upload_keys,
    },
    support::{
        another_device, closed_with, list, peek, publish, reconnect, register_with, registered,
        send_to, settled, texts,
    },
};

/// Rows in a table of the relay's store (the relay must be stopped).
fn rows<K: redb::Key + 'static, V: redb::Value + 'static>(
    db: &Database,
    table: redb::TableDefinition<K, V>,
) -> u64 {
    db.begin_read()
        .unwrap()
        .open_table(table)
        .unwrap()
        .len()
        .unwrap()
}

#[tokio::test]
async fn a_revoked_device_is_closed_its_mailbox_deleted_and_its_registration_refused() {
    let TestRelay { dir, relay } = start_tweaked(|_| {}, None).await;
    let address = relay.tcp_dial_addr().unwrap();
    let mut phone = RawDevice::registered(&address).await;
    let mut laptop = another_device(&address, &phone).await;
    let both = list(&phone.account, 1, &[&phone.device, &laptop.device]);
    publish(&mut phone, both).await.unwrap();
    registered(&mut laptop).await;
    let uploaded = laptop
        .request(Request::UploadKeys(Box::new(upload_keys(
            &laptop.device,
            3,
        ))))
        .await;
    assert!(uploaded.is_ok(), "{uploaded:?}");

    // Mail waits for the laptop: a direct envelope, and a group's envelopes (stored once,
    // referenced from each of Alice's devices).
    let mut bob = RawDevice::registered(&address).await;
    let alice_user = phone.address().user;
    assert_eq!(
        send_to(&mut bob, laptop.address(), "for the laptop").await,
        SendOutcome::Accepted
    );
    let created = genesis(
        &bob.account,
        vec![
            member(bob.address().user, Role::Admin),
            member(alice_user, Role::Member),
        ],
    );
    let group = created.descriptor.group;
    let control = group_envelope(&bob, group, Kind::GroupControl, created.encode());
    assert_eq!(sent(&mut bob, control).await, SendOutcome::Accepted);
    let message = group_envelope(&bob, group, Kind::Message, b"to the group".to_vec());
    assert_eq!(sent(&mut bob, message).await, SendOutcome::Accepted);
    assert_eq!(peek(&mut laptop).await.len(), 3);

    // The phone publishes a list without the laptop: the laptop's stream ends at once.
    let without = list(&phone.account, 2, &[&phone.device]);
    assert!(publish(&mut phone, without).await.is_ok());
    let fatal = closed_with(&mut laptop)
        .await
        .expect("the laptop is told why");
    assert_eq!(fatal.code, ErrorCode::DeviceRevoked);
    assert_eq!(relay.metrics().device_lists.revoked_total(), 1);

    // Nothing reaches it any more: no envelopes, no key claims.
    let late = send_to(&mut bob, laptop.address(), "too late").await;
    assert!(
        matches!(&late, SendOutcome::Rejected(answer) if answer.code == ErrorCode::UnknownRecipient),
        "{late:?}"
    );
    let claim = bob
        .request(Request::ClaimBundle {
            device: laptop.address(),
        })
        .await;
    assert_eq!(claim.unwrap_err().code, ErrorCode::UnknownRecipient);
    // It cannot come back on its own.
    let mut again = reconnect(&address, &laptop).await;
    let refused = register_with(&mut again, None).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::DeviceRevoked);

    // Named by a newer list it registers again, as a new device with an empty mailbox.
    let back = list(&phone.account, 3, &[&phone.device, &laptop.device]);
    publish(&mut phone, back).await.unwrap();
    registered(&mut again).await;
    assert!(peek(&mut again).await.is_empty());
    let claim = bob
        .request(Request::ClaimBundle {
            device: laptop.address(),
        })
        .await;
    assert_eq!(
        claim.unwrap_err().code,
        ErrorCode::NoKeys,
        "its one-time keys went with it"
    );

    // The phone still has its copies; once it acks them, no blob is left behind.
    let got = phone.drain().await;
    assert_eq!(texts(&got).last().map(String::as_str), Some("to the group"));
    settled(&mut phone).await;
    relay.shutdown().await;
    let db = Database::open(dir.path().join(STORE_FILE)).unwrap();
    assert_eq!(rows(&db, tables::MAILBOX), 0);
    assert_eq!(rows(&db, tables::BLOBS), 0);
    assert_eq!(rows(&db, tables::BLOB_REFS), 0);
    assert_eq!(rows(&db, tables::MAILBOX_BYTES), 0);
    assert_eq!(rows(&db, tables::ONE_TIME_KEYS), 0);
}
