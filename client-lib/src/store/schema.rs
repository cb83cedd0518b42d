//! The schema version `client.redb` records, and the migrations up from older ones.
//!
//! The version is a key of the store's `meta` table (4 bytes, big-endian: the table holds
//! bytes). On opening, a new file is stamped with the current version; a file without the key
//! is what the first release wrote (version 1); an older file is migrated to the current
//! version in the opening write transaction; a newer one is refused, so an older build never
//! misreads it. Adding a migration from version N to N+1 is one function plus one line at the
//! end of [`MIGRATIONS`].

use super::at_rest::WriteTxn;
use redb::{ReadableTable, TableDefinition};
use serde::Deserialize;
use tidings_protocol::{EnvelopeId, Kind, RawEnvelope, store::schema_plan};

use super::{
    StoreError, decode as decode_record, encode,
    tables::{Conversation, META, OUTBOX, OutboxContent, OutboxEntry, SealedCopy},
};

/// META key of the schema version.
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// The version of a file without the key: what the first release wrote.
pub const UNVERSIONED: u32 = tidings_protocol::store::UNVERSIONED_SCHEMA;

/// The first version whose personal values are sealed at rest (see `at_rest`).
pub const SEALED_AT_REST: u32 = 3;

/// Turns a file of one version into the next, inside the opening write transaction.
pub type Migration = fn(&WriteTxn<'_>) -> Result<(), StoreError>;

/// Entry `i` migrates version `UNVERSIONED + i` to the one after it.
const MIGRATIONS: &[Migration] = &[
    devices_of_accounts,
    super::at_rest_migration::seal_personal_data,
];

/// Version 1's one device per user (`user_devices`), which signed device lists replace.
const V1_USER_DEVICES: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("user_devices");

/// An outbox entry as version 1 kept it: at most one sealed envelope.
#[derive(Deserialize)]
struct V1OutboxEntry {
    id: EnvelopeId,
    to: Conversation,
    kind: Kind,
    content: OutboxContent,
    sealed: Option<RawEnvelope>,
}

/// Version 1 -> 2 (accounts of several devices): the one-device mapping goes (device lists,
/// fetched and verified on use, replace it; Olm sessions stay per peer device); an outbox
/// entry keeps its sealed envelope as its one copy, so a retry still sends the same bytes.
/// Group sending sessions keep their key, re-shared to every member device on the next send
/// (version 1 recorded only which users had it).
fn devices_of_accounts(txn: &WriteTxn<'_>) -> Result<(), StoreError> {
    txn.delete_table(V1_USER_DEVICES)?;
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut entries = Vec::new();
    for entry in outbox.iter()? {
        let (seq, bytes) = entry?;
        entries.push((
            seq.value(),
            decode_record::<V1OutboxEntry>("outbox", bytes.value())?,
        ));
    }
    for (seq, old) in entries {
        let sealed = old
            .sealed
            .and_then(|envelope| {
                let to = envelope.open().ok()?.recipient;
                Some(SealedCopy { to, envelope })
            })
            .into_iter()
            .collect();
        let entry = OutboxEntry {
            sealed,
            ..OutboxEntry::new(old.id, old.to, old.kind, old.content)
        };
        outbox.insert(seq, encode(&entry).as_slice())?;
    }
    Ok(())
}

/// The version this build writes.
pub fn current() -> u32 {
    version_after(MIGRATIONS)
}

/// The version a file has once `migrations` ran.
fn version_after(migrations: &[Migration]) -> u32 {
    let count = u32::try_from(migrations.len()).unwrap_or(u32::MAX - UNVERSIONED);
    UNVERSIONED + count
}

/// Checks the version of the file `txn` writes to, migrating it up (and stamping it) if it is
/// older; refuses it if it is newer. Returns the version it was found at.
pub fn upgrade(txn: &WriteTxn<'_>) -> Result<u32, StoreError> {
    upgrade_with(txn, MIGRATIONS)
}

fn upgrade_with(txn: &WriteTxn<'_>, migrations: &[Migration]) -> Result<u32, StoreError> {
    let fresh = txn.list_tables()?.next().is_none();
    let recorded = match txn.open_table(META)?.get(META_SCHEMA_VERSION)? {
        Some(value) => Some(decode(value.value())?),
        None => None,
    };
    let plan = schema_plan(super::STORE_FILE, recorded, fresh, migrations.len())?;
    for migration in &migrations[plan.first_migration.min(migrations.len())..] {
        migration(txn)?;
    }
    txn.open_table(META)?
        .insert(META_SCHEMA_VERSION, plan.current.to_be_bytes().as_slice())?;
    Ok(plan.found)
}

/// Reads a stored version.
pub fn decode(bytes: &[u8]) -> Result<u32, StoreError> {
    let bytes = <[u8; 4]>::try_from(bytes)
        .map_err(|_| StoreError::corrupt("meta", "schema version is not 4 bytes"))?;
    Ok(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use redb::{Database, ReadableDatabase, TableDefinition};

    use super::*;

    const ADDED: TableDefinition<&str, u64> = TableDefinition::new("added_by_migration");

    /// A migration 1 -> 2 as a later release would add it.
    fn add_a_table(txn: &WriteTxn<'_>) -> Result<(), StoreError> {
        txn.open_table(ADDED)?.insert("migrated", 1)?;
        Ok(())
    }

    fn open(db: &Database, migrations: &[Migration]) -> Result<u32, StoreError> {
        let at_rest = crate::store::AtRest::new(crate::store::tests::test_store_key());
        let txn = WriteTxn::new(db.begin_write()?, &at_rest);
        let found = upgrade_with(&txn, migrations)?;
        txn.commit()?;
        Ok(found)
    }

    fn state(db: &Database) -> (Option<u32>, bool) {
        let txn = db.begin_read().unwrap();
        let version = txn
            .open_table(META)
            .unwrap()
            .get(META_SCHEMA_VERSION)
            .unwrap()
            .map(|value| decode(value.value()).unwrap());
        let migrated = txn.open_table(ADDED).is_ok();
        (version, migrated)
    }

    /// Version 1's outbox entry, as it was written.
    #[derive(serde::Serialize)]
    struct WrittenByV1 {
        id: EnvelopeId,
        to: Conversation,
        kind: Kind,
        content: OutboxContent,
        sealed: Option<RawEnvelope>,
    }

    #[test]
    fn version_1_outbox_entries_keep_their_sealed_envelope_and_the_device_mapping_goes() {
        use tidings_protocol::{Recipient, content::Payload};
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("v1.redb")).unwrap();
        let me = tidings_keys::Identity::generate();
        let bob = tidings_keys::Identity::generate();
        let id = EnvelopeId::random();
        let envelope = crate::store::sign(
            &me,
            id,
            Recipient::Direct(bob.address()),
            Kind::Message,
            b"olm".to_vec(),
        );
        let content = OutboxContent::Encrypted(Payload::Text { text: "hi".into() });
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("relay_addr", b"x".as_slice())
            .unwrap();
        txn.open_table(V1_USER_DEVICES)
            .unwrap()
            .insert(bob.user_id().as_bytes(), bob.device_id().as_bytes())
            .unwrap();
        let mut outbox = txn.open_table(OUTBOX).unwrap();
        for (seq, sealed) in [(1, Some(envelope.clone())), (2, None)] {
            let old = WrittenByV1 {
                id,
                to: Conversation::Direct(bob.user_id()),
                kind: Kind::Message,
                content: content.clone(),
                sealed,
            };
            outbox
                .insert(seq, tidings_protocol::codec::encode(&old).as_slice())
                .unwrap();
        }
        drop(outbox);
        txn.commit().unwrap();

        assert_eq!(open(&db, MIGRATIONS).unwrap(), UNVERSIONED);
        let txn = db.begin_read().unwrap();
        let outbox = txn.open_table(OUTBOX).unwrap();
        // Version 3 seals the entries (under the key `open` uses).
        let at_rest = crate::store::AtRest::new(crate::store::tests::test_store_key());
        let entry = |seq: u64| -> OutboxEntry {
            at_rest
                .open_record(
                    "outbox",
                    &seq.to_be_bytes(),
                    outbox.get(seq).unwrap().unwrap().value(),
                )
                .unwrap()
        };
        assert_eq!(
            entry(1).sealed,
            [SealedCopy {
                to: Recipient::Direct(bob.address()),
                envelope,
            }]
        );
        assert_eq!(entry(1).content, content);
        assert!(entry(2).sealed.is_empty());
        assert!(txn.open_table(V1_USER_DEVICES).is_err());
    }

    #[test]
    fn a_first_release_store_is_migrated_a_new_one_stamped_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Database::create(dir.path().join("first.redb")).unwrap();
        let txn = first.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("relay_addr", b"x".as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(open(&first, &[add_a_table]).unwrap(), UNVERSIONED);
        assert_eq!(state(&first), (Some(2), true));

        let fresh = Database::create(dir.path().join("fresh.redb")).unwrap();
        assert_eq!(open(&fresh, &[add_a_table]).unwrap(), 2);
        assert_eq!(state(&fresh), (Some(2), false));

        let error = open(&first, &[]).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Storage(tidings_protocol::store::StoreError::NewerSchema {
                    found: 2,
                    known: 1,
                    ..
                })
            ),
            "{error}"
        );
        assert_eq!(state(&first), (Some(2), true));
    }
}
