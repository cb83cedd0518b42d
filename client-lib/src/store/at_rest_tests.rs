//! Encryption at rest on a real redb file: the file's bytes hold no personal plaintext, a tampered or swapped value is a typed error, and a store written in plain is migrated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};
use tidings_keys::StoreKey;
use tidings_protocol::{
    BoundedVec, EnvelopeId, Kind,
    content::Payload,
    group::{Descriptor, GroupMember, Role},
    now_ms,
    profile::Profile,
    status::OwnStatus,
};

use super::{
    ClientStore, Conversation, Direction, MessageRecord, MessageStatus, STORE_FILE, SearchQuery,
    StoreError, encode,
    profiles::OwnProfile,
    schema::META_SCHEMA_VERSION,
    status,
    tables::{
        CONTACT_NAMES, CONTACTS, MESSAGE_IDS, MESSAGES, META, OUTBOX, OutboxContent, OutboxEntry,
        message_key,
    },
    tests::{card, user},
};
use crate::search::index::{Author, Document, Indexer};

fn key() -> &'static StoreKey {
    super::tests::test_store_key()
}

/// Whether the store file in `dir` holds `needle` anywhere in its bytes.
fn file_holds(dir: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(dir.join(STORE_FILE)).unwrap();
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn search(store: &ClientStore, words: &str) -> Vec<String> {
    store
        .search(&SearchQuery {
            words: words.into(),
            within: None,
            from: None,
            limit: 10,
        })
        .unwrap()
        .records
        .into_iter()
        .map(|record| record.text)
        .collect()
}

#[test]
fn after_normal_use_the_file_holds_no_message_text_nor_search_word() {
    let dir = tempfile::tempdir().unwrap();
    let store = ClientStore::open(dir.path(), key()).unwrap();
    let bob = Conversation::Direct(user(2));
    store
        .queue_texts(
            user(1),
            bob,
            vec!["zanzibarquokka meets xylophonewombat".into()],
        )
        .unwrap();
    assert_eq!(
        search(&store, "xylophonewombat"),
        ["zanzibarquokka meets xylophonewombat"]
    );
    assert_eq!(store.history(&bob).unwrap().len(), 1);
    assert_eq!(store.pending(10).unwrap().len(), 1);
    store
        .add_contact("quibblewhiskers", &card(user(2)))
        .unwrap();
    store
        .set_own_profile(&OwnProfile {
            key: vec![1; 32],
            profile: Profile {
                version: 1,
                name: "marmaladefalcon".into(),
                about: "collects obsidianteacups".into(),
                picture: None,
            },
            uploaded: false,
        })
        .unwrap();
    let status = OwnStatus {
        id: EnvelopeId::new(),
        expires_at_ms: now_ms() + 60_000,
        audience: BoundedVec::new(vec![user(2)]).unwrap(),
        text: "tangerinelighthouse at dawn".into(),
        media: None,
    };
    store.write(|txn| status::take_own(txn, status)).unwrap();
    let admin = tidings_keys::Identity::generate();
    let members = BoundedVec::new(Descriptor::normalize(vec![
        GroupMember {
            user: admin.user_id(),
            role: Role::Admin,
        },
        GroupMember {
            user: user(2),
            role: Role::Member,
        },
    ]))
    .unwrap();
    let genesis = admin.sign_descriptor(Descriptor::genesis(
        admin.user_id(),
        "periwinklecabal".into(),
        members,
    ));
    let group = genesis.descriptor.group;
    assert_eq!(store.apply_group_versions(&[genesis]).unwrap(), 1);
    assert_eq!(
        store.group(&group).unwrap().unwrap().descriptor.name,
        "periwinklecabal"
    );
    assert_eq!(
        store.contact_name(&user(2)).unwrap().as_deref(),
        Some("quibblewhiskers")
    );
    assert_eq!(store.contacts().unwrap()[0].0, "quibblewhiskers");
    assert_eq!(
        store.own_profile().unwrap().unwrap().profile.name,
        "marmaladefalcon"
    );
    assert_eq!(
        store.my_statuses(now_ms()).unwrap()[0].text,
        "tangerinelighthouse at dawn"
    );
    drop(store);
    for secret in [
        "zanzibarquokka",
        "xylophonewombat",
        "meets",
        "quibblewhiskers",
        "marmaladefalcon",
        "obsidianteacups",
        "tangerinelighthouse",
        "periwinklecabal",
    ] {
        assert!(!file_holds(dir.path(), secret), "{secret} is in the file");
    }
    // Reopened with the key, everything reads back; with another key nothing does.
    let store = ClientStore::open(dir.path(), key()).unwrap();
    assert_eq!(
        search(&store, "zanzibarquokka"),
        ["zanzibarquokka meets xylophonewombat"]
    );
    assert_eq!(
        store.contact("quibblewhiskers").unwrap(),
        Some(card(user(2)))
    );
    drop(store);
    let wrong =
        ClientStore::open(dir.path(), tidings_keys::Identity::generate().store_key()).unwrap();
    assert!(matches!(
        wrong.history(&bob),
        Err(StoreError::Sealed { table: "messages" })
    ));
    assert!(matches!(
        wrong.pending(10),
        Err(StoreError::Sealed { table: "outbox" })
    ));
}

#[test]
fn a_tampered_value_and_two_swapped_rows_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = ClientStore::open(dir.path(), key()).unwrap();
    let bob = Conversation::Direct(user(2));
    let sent = store
        .queue_texts(user(1), bob, vec!["first".into(), "second".into()])
        .unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = {
        let txn = store.db.begin_read().unwrap();
        let messages = txn.open_table(MESSAGES).unwrap();
        messages
            .iter()
            .unwrap()
            .map(|row| {
                let (key, value) = row.unwrap();
                (key.value().to_vec(), value.value().to_vec())
            })
            .collect()
    };
    assert_eq!(rows.len(), 2);
    let write = |changes: &[(&[u8], &[u8])]| {
        let txn = store.db.begin_write().unwrap();
        {
            let mut messages = txn.open_table(MESSAGES).unwrap();
            for (key, value) in changes {
                messages.insert(*key, *value).unwrap();
            }
        }
        txn.commit().unwrap();
    };
    // Swapped: each row holds the other's (well-formed, sealed under the right key) value.
    write(&[(&rows[0].0, &rows[1].1), (&rows[1].0, &rows[0].1)]);
    for id in [sent[0].id, sent[1].id] {
        assert!(matches!(
            store.message(&id),
            Err(StoreError::Sealed { table: "messages" })
        ));
    }
    // Tampered: one bit of the ciphertext flipped.
    let mut tampered = rows[0].1.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    write(&[(&rows[0].0, &tampered), (&rows[1].0, &rows[1].1)]);
    assert!(matches!(
        store.message(&sent[0].id),
        Err(StoreError::Sealed { table: "messages" })
    ));
    assert_eq!(store.message(&sent[1].id).unwrap().unwrap().text, "second");
}

/// A store as version 2 (main before encryption at rest) left it: plain messages (`older`
/// ones saying "plainoldfiller", then `text`), an outbox entry and search words.
fn write_version_2(dir: &Path, older: u64, text: &str) -> MessageRecord {
    let db = Database::create(dir.join(STORE_FILE)).unwrap();
    let conversation = Conversation::Direct(user(2));
    let record = MessageRecord {
        id: EnvelopeId::new(),
        peer: user(2),
        group: None,
        direction: Direction::Outgoing,
        text: text.into(),
        sent_at_ms: now_ms(),
        stored_at_ms: now_ms(),
        status: MessageStatus::Pending,
        media: None,
    };
    let key = message_key(&conversation, 1 << 32);
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert(META_SCHEMA_VERSION, 2u32.to_be_bytes().as_slice())
        .unwrap();
    txn.open_table(MESSAGES)
        .unwrap()
        .insert(key.as_slice(), encode(&record).as_slice())
        .unwrap();
    txn.open_table(MESSAGE_IDS)
        .unwrap()
        .insert(record.id.as_bytes(), key.as_slice())
        .unwrap();
    txn.open_table(CONTACTS)
        .unwrap()
        .insert("plainoldcontact", encode(&card(user(2))).as_slice())
        .unwrap();
    txn.open_table(CONTACT_NAMES)
        .unwrap()
        .insert(user(2).as_bytes(), "plainoldcontact")
        .unwrap();
    let entry = OutboxEntry::new(
        record.id,
        conversation,
        Kind::Message,
        OutboxContent::Encrypted(Payload::Text { text: text.into() }),
    );
    txn.open_table(OUTBOX)
        .unwrap()
        .insert(1, encode(&entry).as_slice())
        .unwrap();
    let mut indexer = Indexer::open(&txn).unwrap();
    indexer
        .put(&Document {
            key: &key,
            rank_ms: record.sent_at_ms,
            author: Author::Me,
            words: crate::search::tokens::words(text),
        })
        .unwrap();
    for seq in 1..=older {
        let text = format!("plainoldfiller number {seq}");
        let old = MessageRecord {
            id: EnvelopeId::new(),
            text: text.clone(),
            ..record.clone()
        };
        let key = message_key(&conversation, seq);
        txn.open_table(MESSAGES)
            .unwrap()
            .insert(key.as_slice(), encode(&old).as_slice())
            .unwrap();
        indexer
            .put(&Document {
                key: &key,
                rank_ms: seq,
                author: Author::Me,
                words: crate::search::tokens::words(&text),
            })
            .unwrap();
    }
    drop(indexer);
    txn.commit().unwrap();
    record
}

#[test]
fn a_store_written_in_plain_is_sealed_on_open_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let text = "plainoldquetzal remembers plainoldpangolin";
    let older = 3 * super::at_rest_migration::MIGRATION_CHUNK as u64 / 2;
    let record = write_version_2(dir.path(), older, text);
    assert!(file_holds(dir.path(), "plainoldquetzal"));
    assert!(file_holds(dir.path(), "plainoldfiller"));

    let store = ClientStore::open(dir.path(), key()).unwrap();
    let conversation = Conversation::Direct(user(2));
    let history = store.history(&conversation).unwrap();
    assert_eq!(history.len() as u64, older + 1);
    assert_eq!(history[1].text, "plainoldfiller number 2");
    assert_eq!(history.last(), Some(&record));
    assert_eq!(store.message(&record.id).unwrap(), Some(record.clone()));
    let pending = store.pending(10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].1.content,
        OutboxContent::Encrypted(Payload::Text { text: text.into() })
    );
    assert_eq!(search(&store, "plainoldpangolin"), [text]);
    assert_eq!(
        store.contact("plainoldcontact").unwrap(),
        Some(card(user(2)))
    );
    assert_eq!(
        store.contact_name(&user(2)).unwrap().as_deref(),
        Some("plainoldcontact")
    );
    drop(store);
    for secret in [
        "plainoldquetzal",
        "plainoldpangolin",
        "remembers",
        "plainoldfiller",
        "plainoldcontact",
    ] {
        assert!(
            !file_holds(dir.path(), secret),
            "{secret} is still in the file"
        );
    }
    let store = ClientStore::open(dir.path(), key()).unwrap();
    assert_eq!(store.history(&conversation).unwrap().last(), Some(&record));
}
