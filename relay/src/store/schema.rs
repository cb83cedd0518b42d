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
use tidings_protocol::store::StoreError;

/// name -> value: the schema version and whatever small facts about the file come later.
pub const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
/// META key of the schema version.
pub const SCHEMA_VERSION: &str = "schema_version";
/// The version of a file without a `meta` table: what the first release wrote.
pub const UNVERSIONED: u32 = 1;

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

/// `relay.redb`: users, mailboxes, outbox, groups, presence.
pub const RELAY: Schema = Schema {
    file: "relay.redb",
    migrations: &[],
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
        UNVERSIONED + migrations
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
        let current = self.current();
        let fresh = txn.list_tables()?.next().is_none();
        let recorded = txn
            .open_table(META)?
            .get(SCHEMA_VERSION)?
            .map(|value| value.value());
        let found = match recorded {
            Some(version) => version,
            None if fresh => current,
            None => UNVERSIONED,
        };
        if found > current {
            return Err(StoreError::NewerSchema {
                file: self.file,
                found,
                known: current,
            });
        }
        let first = found.checked_sub(UNVERSIONED).ok_or_else(|| {
            StoreError::corrupt("meta", format!("schema version {found} does not exist"))
        })?;
        for migration in self.migrations.iter().skip(first as usize) {
            migration(txn)?;
        }
        txn.open_table(META)?.insert(SCHEMA_VERSION, current)?;
        Ok(found)
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
