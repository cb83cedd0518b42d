//! Counters of the DHT's record handling, kept by the network event loop, and the collector
//! that reads them into `/metrics` at each scrape.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter},
};

/// Counters of DHT record handling (read by tests and metrics).
#[derive(Debug, Default)]
pub struct DhtStats {
    /// Home records stored after validation.
    pub stored: AtomicU64,
    /// Home records refused (forged, expired, stale, wrong key, undecodable).
    pub rejected: AtomicU64,
    /// DHT queries started to look up a home record (a caller joining a query already
    /// running starts none).
    pub lookups: AtomicU64,
    /// Valid home records from other peers not stored: their peer had its share, or the
    /// store its budget.
    pub over_limit: AtomicU64,
}

impl DhtStats {
    /// Records stored so far.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Records refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Valid records from other peers left out by the store's limits so far.
    pub fn over_limit(&self) -> u64 {
        self.over_limit.load(Ordering::Relaxed)
    }

    /// Home-record lookups (DHT queries) started so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }
}

/// Home records checked on their way into or out of the DHT, read from [`DhtStats`] at
/// each scrape.
#[derive(Debug, Default)]
pub(super) struct HomeRecords(pub(super) Arc<OnceLock<Arc<DhtStats>>>);

impl Collector for HomeRecords {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = self.0.get() else {
            return Ok(());
        };
        let mut metric = encoder.encode_descriptor(
            "home_records",
            "Home records from the DHT: stored after validation, refused (forged, stale, \
             expired, for another user), or valid but over the store's limits",
            None,
            MetricType::Counter,
        )?;
        for (verdict, count) in [
            ("stored", stats.stored()),
            ("rejected", stats.rejected()),
            ("over_limit", stats.over_limit()),
        ] {
            let labels = [("verdict", verdict)];
            ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
        }
        let lookups = encoder.encode_descriptor(
            "dht_lookups",
            "Home-record lookups started in the DHT (one Kademlia query each)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.lookups()).encode(lookups)?;
        Ok(())
    }
}
