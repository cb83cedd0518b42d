//! Every table a relay's redb files may hold, and how to copy each byte for byte.
//!
//! redb reads a table only through its key and value types, so a copy needs them; a table
//! missing here makes a backup fail (`BackupError::UnknownTable`) instead of leaving it out.
//! A new table is one line below (the tests start a relay and back up every table it made).

use std::{cmp::Ordering, fmt, marker::PhantomData};

use redb::{
    Key, ReadTransaction, ReadableTable, TableDefinition, TypeName, Value, WriteTransaction,
};
use tidings_protocol::store::StoreError;

use crate::store::{schema, status, tables as relay};

/// A table's keys or values as the bytes redb stores, under the type name `T` gave them (so
/// the copy opens with the relay's own definitions) and in `T`'s order.
pub(crate) struct Raw<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for Raw<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Raw")
    }
}

impl<T: Value + 'static> Value for Raw<T> {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        T::fixed_width()
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        T::type_name()
    }
}

impl<T: Key + 'static> Key for Raw<T> {
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        T::compare(data1, data2)
    }
}

/// Copies the table `name` from a snapshot into a new file's write transaction; returns the
/// entries copied.
pub(crate) type CopyTable =
    fn(from: &ReadTransaction, to: &WriteTransaction, name: &str) -> Result<u64, StoreError>;

fn copy<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    name: &str,
) -> Result<u64, StoreError> {
    let definition = TableDefinition::<Raw<K>, Raw<V>>::new(name);
    let source = from.open_table(definition)?;
    let mut target = to.open_table(definition)?;
    let mut copied = 0u64;
    for entry in source.iter()? {
        let (key, value) = entry?;
        target.insert(key.value(), value.value())?;
        copied += 1;
    }
    Ok(copied)
}

/// The copier of tables of `definition`'s types.
fn like<K: Key + 'static, V: Value + 'static>(_: TableDefinition<'_, K, V>) -> CopyTable {
    copy::<K, V>
}

/// Which table names a [`KnownTable`] covers.
#[derive(Debug, Clone)]
pub(crate) enum Names {
    /// Exactly this name.
    Exact(String),
    /// Every name starting with this (tables made per generation).
    Prefix(&'static str),
}

/// One table (or family of tables) and its copier.
#[derive(Clone)]
pub(crate) struct KnownTable {
    pub names: Names,
    pub copy: CopyTable,
}

impl KnownTable {
    fn matches(&self, name: &str) -> bool {
        match &self.names {
            Names::Exact(exact) => name == exact,
            Names::Prefix(prefix) => name.starts_with(prefix),
        }
    }
}

fn exact<K: Key + 'static, V: Value + 'static>(
    definition: TableDefinition<'_, K, V>,
) -> KnownTable {
    KnownTable {
        names: Names::Exact(redb::TableHandle::name(&definition).to_string()),
        copy: like(definition),
    }
}

/// The tables of the database file `file` (a name of `super::DATABASE_FILES`).
pub(crate) fn known_tables(file: &str) -> Vec<KnownTable> {
    let mut known = vec![exact(schema::META)];
    if file == crate::store::schema::RELAY.file {
        known.extend([
            exact(relay::USERS),
            exact(relay::DEVICES),
            exact(relay::DEVICE_RECORDS),
            exact(relay::USER_DEVICES),
            exact(relay::ONE_TIME_KEYS),
            exact(relay::CURSORS),
            exact(relay::MAILBOX_BYTES),
            exact(relay::MAILBOX),
            exact(relay::OUTBOX_META),
            exact(relay::OUTBOX_BODY),
            exact(relay::OUTBOX_REFS),
            exact(relay::OUTBOX_SENDERS),
            exact(relay::MAILBOX_ORIGINS),
            exact(relay::RELAY_HOLDS),
            exact(relay::BLOBS),
            exact(relay::BLOB_REFS),
            exact(relay::GROUP_VERSIONS),
            exact(relay::GROUP_HEADS),
            exact(relay::PRESENCE),
            exact(relay::DEVICE_LISTS),
            exact(relay::MEDIA_BLOBS),
            exact(relay::MEDIA_UPLOADS),
            exact(relay::MEDIA_BYTES),
            exact(relay::MEDIA_REFS),
            exact(relay::PUSH_SUBSCRIPTIONS),
            exact(relay::PROFILES),
            exact(relay::STATUS_MEDIA),
            exact(relay::SUSPENDED),
            exact(relay::REMOVED),
            KnownTable {
                names: Names::Prefix(relay::SEEN_PREFIX),
                copy: copy::<&relay::SeenKey, &[u8; 16]>,
            },
            KnownTable {
                names: Names::Prefix(relay::LEGACY_SEEN_PREFIX),
                copy: copy::<&[u8; 16], &[u8; 16]>,
            },
        ]);
    } else if file == status::STATUS_FILE {
        known.extend([
            exact(status::STATUS_POSTS),
            exact(status::STATUS_INBOX),
            exact(status::STATUS_EXPIRY),
            exact(status::STATUS_BY_POSTER),
            exact(status::STATUS_FORWARDS),
        ]);
    } else if file == crate::invites::INVITES_FILE {
        known.push(exact(crate::invites::INVITES));
    }
    known
}

/// The copier of the table `name` of `file`, if this build knows it.
pub(crate) fn copier(known: &[KnownTable], name: &str) -> Option<CopyTable> {
    known
        .iter()
        .find(|table| table.matches(name))
        .map(|table| table.copy)
}
