//! The schema version `client.redb` records, and the migrations up from older ones.
//!
//! The version is a key of the store's `meta` table (4 bytes, big-endian: the table holds
//! bytes). On opening, a new file is stamped with the current version; a file without the key
//! is what the first release wrote (version 1); an older file is migrated to the current
//! version in the opening write transaction; a newer one is refused, so an older build never
//! misreads it. Adding a migration from version N to N+1 is one function plus one line at the
//! end of [`MIGRATIONS`].

use redb::{ReadableTable, TableDefinition, WriteTransaction};
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

/// Turns a file of one version into the next, inside the opening write transaction.
pub type Migration = fn(&WriteTransaction) -> Result<(), StoreError>;

/// Entry `i` migrates version `UNVERSIONED + i` to the one after it.
const MIGRATIONS: &[Migration] = &[devices_of_accounts];

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
fn devices_of_accounts(txn: &WriteTransaction) -> Result<(), StoreError> {
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
pub fn upgrade(txn: &WriteTransaction) -> Result<u32, StoreError> {
    upgrade_with(txn, MIGRATIONS)
}

fn upgrade_with(txn: &WriteTransaction, migrations: &[Migration]) -> Result<u32, StoreError> {
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
    fn add_a_table(txn: &WriteTransaction) -> Result<(), StoreError> {
        txn.open_table(ADDED)?.insert("migrated", 1)?;
        Ok(())
    }

    fn open(db: &Database, migrations: &[Migration]) -> Result<u32, StoreError> {
        let txn = db.begin_write()?;
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
