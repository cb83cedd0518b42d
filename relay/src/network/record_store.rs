//! The DHT record store, bounded: a byte budget for everything held for others, a cap on
//! records per publishing peer, and room beyond half the budget only for records vouched
//! for by the relay they name as home.

use std::{borrow::Cow, collections::HashMap};

use libp2p::{
    PeerId,
    kad::{
        ProviderRecord, Record, RecordKey,
        store::{self, MemoryStore, MemoryStoreConfig, RecordStore},
    },
};

/// Bytes a record is charged besides its key and value (map entries, expiry, publisher).
const RECORD_OVERHEAD_BYTES: usize = 128;

/// Why a record from another peer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The peer already has its share of records here.
    PublisherLimit,
    /// The byte budget is spent (or, for records not vouched for, half of it).
    Full,
}

/// Limits of the record store.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordLimits {
    /// Bytes of records held in all.
    pub max_bytes: usize,
    /// Records one peer may have stored here.
    pub per_publisher: usize,
}

/// A [`MemoryStore`] that accounts what it holds per publisher and in bytes.
pub struct BoundedStore {
    inner: MemoryStore,
    local: PeerId,
    limits: RecordLimits,
    bytes: usize,
    by_publisher: HashMap<PeerId, usize>,
}

fn charge(record: &Record) -> usize {
    record.key.as_ref().len() + record.value.len() + RECORD_OVERHEAD_BYTES
}

impl BoundedStore {
    pub(super) fn new(local: PeerId, config: MemoryStoreConfig, limits: RecordLimits) -> Self {
        Self {
            inner: MemoryStore::with_config(local, config),
            local,
            limits,
            bytes: 0,
            by_publisher: HashMap::new(),
        }
    }

    /// Stores a validated record another peer sent (its publisher is taken to be `source`),
    /// if the limits allow. `vouched`: the record came from the relay it names as home.
    pub(super) fn put_from(
        &mut self,
        mut record: Record,
        source: PeerId,
        vouched: bool,
    ) -> Result<(), Refused> {
        record.publisher = Some(source);
        let replaced = self.inner.get(&record.key).map(|old| {
            let old = old.into_owned();
            (charge(&old), old.publisher)
        });
        let freed = replaced.map_or(0, |(bytes, _)| bytes);
        let same_publisher = replaced.is_some_and(|(_, publisher)| publisher == Some(source));
        let held = self.by_publisher.get(&source).copied().unwrap_or(0);
        if !same_publisher && held >= self.limits.per_publisher {
            return Err(Refused::PublisherLimit);
        }
        let budget = if vouched {
            self.limits.max_bytes
        } else {
            self.limits.max_bytes / 2
        };
        if self.bytes.saturating_sub(freed) + charge(&record) > budget {
            return Err(Refused::Full);
        }
        self.put(record).map_err(|_| Refused::Full)
    }

    /// Bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes a record that left the store out of the accounting.
    fn uncount(&mut self, old: &Record) {
        self.bytes = self.bytes.saturating_sub(charge(old));
        if let Some(publisher) = old.publisher
            && let Some(count) = self.by_publisher.get_mut(&publisher)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.by_publisher.remove(&publisher);
            }
        }
    }
}

impl RecordStore for BoundedStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, key: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(key)
    }

    /// Kademlia's own inserts (this relay publishing its users' records) and
    /// [`BoundedStore::put_from`]: the accounting, without limits (those were checked).
    fn put(&mut self, record: Record) -> store::Result<()> {
        let bytes = charge(&record);
        let publisher = record.publisher.filter(|peer| *peer != self.local);
        let old = self.inner.get(&record.key).map(Cow::into_owned);
        self.inner.put(record)?;
        if let Some(old) = old {
            self.uncount(&old);
        }
        self.bytes += bytes;
        if let Some(publisher) = publisher {
            *self.by_publisher.entry(publisher).or_insert(0) += 1;
        }
        Ok(())
    }

    fn remove(&mut self, key: &RecordKey) {
        if let Some(old) = self.inner.get(key).map(Cow::into_owned) {
            self.uncount(&old);
        }
        self.inner.remove(key);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        self.inner.add_provider(record)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.inner.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        self.inner.remove_provider(key, provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: u8, size: usize) -> Record {
        Record::new(RecordKey::new(&[key]), vec![0; size])
    }

    fn store() -> BoundedStore {
        let limits = RecordLimits {
            max_bytes: 10 * (1 + 100 + RECORD_OVERHEAD_BYTES),
            per_publisher: 4,
        };
        BoundedStore::new(PeerId::random(), MemoryStoreConfig::default(), limits)
    }

    #[test]
    fn publishers_get_their_share_and_unvouched_records_half_the_bytes() {
        let mut store = store();
        let (greedy, other) = (PeerId::random(), PeerId::random());
        for key in 0..4 {
            assert_eq!(store.put_from(record(key, 100), greedy, true), Ok(()));
        }
        assert_eq!(
            store.put_from(record(4, 100), greedy, true),
            Err(Refused::PublisherLimit)
        );
        // Replacing one of its own records is no new record.
        assert_eq!(store.put_from(record(0, 100), greedy, true), Ok(()));
        // Four of ten slots' worth held: one more unvouched fits in half, then no more.
        assert_eq!(store.put_from(record(10, 100), other, false), Ok(()));
        assert_eq!(
            store.put_from(record(11, 100), other, false),
            Err(Refused::Full)
        );
        // Vouched records use the whole budget.
        for key in 20..25 {
            assert_eq!(
                store.put_from(record(key, 100), PeerId::random(), true),
                Ok(())
            );
        }
        assert_eq!(
            store.put_from(record(30, 100), PeerId::random(), true),
            Err(Refused::Full)
        );
        // Removing gives the bytes and the publisher's share back.
        store.remove(&RecordKey::new(&[0]));
        assert_eq!(store.put_from(record(5, 100), greedy, true), Ok(()));
        assert_eq!(store.bytes(), 10 * (1 + 100 + RECORD_OVERHEAD_BYTES));
    }
}
