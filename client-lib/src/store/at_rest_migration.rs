//! Schema version 2 -> 3: the personal values a store kept in plain are sealed at rest, and its search index (plain words) is dropped to be rebuilt from keyed hashes.

use std::ops::Bound;

use redb::{Database, Key, ReadableTable, TableDefinition};

use tidings_protocol::ContactCard;

use super::{
    StoreError,
    at_rest::WriteTxn,
    contacts, decode,
    profiles::{OWN_PROFILE, PROFILES},
    status::{STATUS_MINE, STATUS_RECEIVED},
    tables::{CONTACTS, GROUPS, MESSAGES, OUTBOX, UPLOADS},
};

/// Rows read per step while a table is sealed: the migration holds at most this many values
/// in memory at once (all steps are in the opening write transaction, so a crash leaves the
/// file as it was and the next open starts again).
pub(super) const MIGRATION_CHUNK: usize = 1_000;

/// Seals every value of the personal tables, and empties the search index.
pub(super) fn seal_personal_data(txn: &WriteTxn<'_>) -> Result<(), StoreError> {
    seal_table(txn, MESSAGES, "messages", <[u8]>::to_vec)?;
    seal_table(txn, OUTBOX, "outbox", |key| {
        <u64 as redb::Value>::from_bytes(key).to_be_bytes().to_vec()
    })?;
    seal_table(txn, OWN_PROFILE, "own_profile", <[u8]>::to_vec)?;
    seal_table(txn, PROFILES, "profiles", <[u8]>::to_vec)?;
    seal_table(txn, STATUS_RECEIVED, "status_received", <[u8]>::to_vec)?;
    seal_table(txn, STATUS_MINE, "status_mine", <[u8]>::to_vec)?;
    seal_table(txn, GROUPS, "groups", <[u8]>::to_vec)?;
    seal_table(txn, UPLOADS, "uploads", <[u8]>::to_vec)?;
    seal_contacts(txn)?;
    crate::search::index::clear(txn)?;
    Ok(())
}

/// Moves each contact from its name's row to its name's keyed hash's, sealed with the name
/// inside; the user -> name table then names that row. (A contact list is small: read whole.)
fn seal_contacts(txn: &WriteTxn<'_>) -> Result<(), StoreError> {
    let plain: Vec<(String, ContactCard)> = {
        let table = txn.open_table(CONTACTS)?;
        let mut plain = Vec::new();
        for entry in table.iter()? {
            let (name, card) = entry?;
            plain.push((name.value().to_string(), decode("contacts", card.value())?));
        }
        plain
    };
    for (name, card) in plain {
        txn.open_table(CONTACTS)?.remove(name.as_str())?;
        contacts::put(txn, &name, &card)?;
    }
    Ok(())
}

/// Seals the values of one table in place, [`MIGRATION_CHUNK`] rows at a time; `row` gives
/// the associated data of a row from redb's bytes of its key.
fn seal_table<K: Key + 'static>(
    txn: &WriteTxn<'_>,
    definition: TableDefinition<K, &'static [u8]>,
    name: &'static str,
    row: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(definition)?;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(MIGRATION_CHUNK);
        {
            let start = match &after {
                Some(last) => Bound::Excluded(K::from_bytes(last)),
                None => Bound::Unbounded,
            };
            for entry in table
                .range::<K::SelfType<'_>>((start, Bound::Unbounded))?
                .take(MIGRATION_CHUNK)
            {
                let (key, value) = entry?;
                chunk.push((
                    K::as_bytes(&key.value()).as_ref().to_vec(),
                    value.value().to_vec(),
                ));
            }
        }
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (key, plain) in chunk {
            let sealed = txn.at_rest.seal(name, &row(&key), &plain)?;
            table.insert(K::from_bytes(&key), sealed.as_slice())?;
        }
    }
}

/// The table the scrub fills the file's free pages with (deleted at once).
const SCRUB: TableDefinition<u64, &[u8]> = TableDefinition::new("at_rest_scrub");
/// Bytes of one scrub row: small, so the rows fill single free pages too.
const SCRUB_ROW: usize = 512;
/// Scrub bytes written per transaction (bounds the memory one commit holds).
const SCRUB_PER_COMMIT: u64 = 16 * 1024 * 1024;

/// Overwrites the pages the migration freed (redb leaves a freed page's old bytes in the
/// file): empty commits release them, rows of zeros at least `free_at_most` bytes long
/// take every one of them before the file grows, then those rows are deleted and the file
/// compacted. Without it the plain values would stay readable in the file's free space.
pub(super) fn scrub_free_pages(db: &mut Database, free_at_most: u64) -> Result<(), StoreError> {
    for _ in 0..2 {
        db.begin_write()?.commit()?;
    }
    let rows = free_at_most / SCRUB_ROW as u64 + 1;
    let per_commit = SCRUB_PER_COMMIT / SCRUB_ROW as u64;
    let zeros = [0u8; SCRUB_ROW];
    let mut next = 0;
    while next < rows {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(SCRUB)?;
            for row in next..rows.min(next + per_commit) {
                table.insert(row, zeros.as_slice())?;
            }
        }
        txn.commit()?;
        next += per_commit;
    }
    let txn = db.begin_write()?;
    txn.delete_table(SCRUB)?;
    txn.commit()?;
    for _ in 0..2 {
        db.begin_write()?.commit()?;
    }
    if let Err(error) = db.compact() {
        // The free pages hold zeros by now: only the file's size is not reduced.
        tracing::warn!(%error, "local store not compacted after sealing it");
    }
    Ok(())
}
