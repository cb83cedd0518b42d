//! The schema version each relay database records, and the migrations up from older ones.
//!
//! Every redb file of the data dir holds a small `meta` table with its schema version. On
//! opening, a new file is stamped with the current version; a file without the table is what
//! the first release wrote (version 1); an older file is migrated to the current version in
//! one write transaction; a newer one is refused, so an older build never misreads it.
//!
//! Adding a migration from version N to N+1 is one function plus one line at the end of its
//! file's list: the current version is one past the migrations.

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use tidings_protocol::store::{StoreError, schema_plan};

/// name -> value: the schema version and whatever small facts about the file come later.
pub const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
/// META key of the schema version.
pub const SCHEMA_VERSION: &str = "schema_version";
/// The version of a file without a `meta` table: what the first release wrote.
pub const UNVERSIONED: u32 = tidings_protocol::store::UNVERSIONED_SCHEMA;

/// Turns a file of one version into the next, inside the opening write transaction.
pub type Migration = fn(&WriteTransaction) -> Result<(), StoreError>;

/// One database file's schema: its name (for errors) and its migrations.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The file's name in the data dir.
    pub file: &'static str,
    /// Entry `i` migrates version `UNVERSIONED + i` to the one after it.
    pub migrations: &'static [Migration],
}

/// `relay.redb`: users and their devices, mailboxes, outbox, groups, presence.
pub const RELAY: Schema = Schema {
    file: "relay.redb",
    migrations: &[super::migrate::per_device],
};

/// `invites.redb`: invite codes.
pub const INVITES: Schema = Schema {
    file: "invites.redb",
    migrations: &[],
};

impl Schema {
    /// The version this build writes.
    pub fn current(&self) -> u32 {
        let migrations = u32::try_from(self.migrations.len()).unwrap_or(u32::MAX - UNVERSIONED);
        UNVERSIONED.saturating_add(migrations)
    }

    /// Checks `db`'s version, migrating it up (and stamping it) if it is older; refuses it
    /// with [`StoreError::NewerSchema`] if it is newer. Returns the version it was found at.
    pub fn apply(&self, db: &Database) -> Result<u32, StoreError> {
        let txn = db.begin_write()?;
        let found = self.upgrade(&txn)?;
        txn.commit()?;
        if found != self.current() {
            tracing::info!(
                file = self.file,
                from = found,
                to = self.current(),
                "database migrated"
            );
        }
        Ok(found)
    }

    /// [`Schema::apply`] inside a transaction the caller commits.
    pub fn upgrade(&self, txn: &WriteTransaction) -> Result<u32, StoreError> {
        let fresh = txn.list_tables()?.next().is_none();
        let recorded = txn
            .open_table(META)?
            .get(SCHEMA_VERSION)?
            .map(|value| value.value());
        let plan = schema_plan(self.file, recorded, fresh, self.migrations.len())?;
        for migration in &self.migrations[plan.first_migration.min(self.migrations.len())..] {
            migration(txn)?;
        }
        txn.open_table(META)?.insert(SCHEMA_VERSION, plan.current)?;
        Ok(plan.found)
    }
}

/// The schema version `db` records, if any (for tests and diagnostics).
pub fn recorded(db: &Database) -> Result<Option<u32>, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    let table = match txn.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    Ok(table.get(SCHEMA_VERSION)?.map(|value| value.value()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use redb::ReadableDatabase;

    use super::*;

    const ADDED: TableDefinition<&str, u64> = TableDefinition::new("added_by_migration");

    /// A migration 1 -> 2 as a later release would add it.
    fn add_a_table(txn: &WriteTransaction) -> Result<(), StoreError> {
        txn.open_table(ADDED)?.insert("migrated", 1)?;
        Ok(())
    }

    const NEXT: Schema = Schema {
        file: "test.redb",
        migrations: &[add_a_table],
    };

    fn migrated(db: &Database) -> bool {
        let txn = db.begin_read().unwrap();
        match txn.open_table(ADDED) {
            Ok(table) => table.get("migrated").unwrap().is_some(),
            Err(redb::TableError::TableDoesNotExist(_)) => false,
            Err(error) => panic!("{error}"),
        }
    }

    fn first_release_file(dir: &std::path::Path) -> Database {
        let db = Database::create(dir.join("test.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<&str, u64>::new("users"))
            .unwrap()
            .insert("someone", 7)
            .unwrap();
        txn.commit().unwrap();
        db
    }

    #[test]
    fn an_unversioned_file_is_version_1_and_runs_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let db = first_release_file(dir.path());
        assert_eq!(NEXT.current(), 2);
        assert_eq!(NEXT.apply(&db).unwrap(), UNVERSIONED);
        assert!(migrated(&db));
        assert_eq!(recorded(&db).unwrap(), Some(2));
        // Opening again migrates nothing more.
        assert_eq!(NEXT.apply(&db).unwrap(), 2);
    }

    #[test]
    fn a_new_file_gets_the_current_version_without_migrating() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("test.redb")).unwrap();
        assert_eq!(NEXT.apply(&db).unwrap(), 2);
        assert!(!migrated(&db));
        assert_eq!(recorded(&db).unwrap(), Some(2));
    }

    #[test]
    fn a_newer_file_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let db = first_release_file(dir.path());
        NEXT.apply(&db).unwrap();
        let older_build = Schema {
            file: "test.redb",
            migrations: &[],
        };
        let error = older_build.apply(&db).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::NewerSchema {
                    file: "test.redb",
                    found: 2,
                    known: 1
                }
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "test.redb: this data dir was written by a newer Tidings (schema 2); \
             this build knows up to 1"
        );
        assert_eq!(recorded(&db).unwrap(), Some(2));
    }
}
