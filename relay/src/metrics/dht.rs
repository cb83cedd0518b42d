//! Counters of the DHT's record handling: kept by the network event loop, read by
//! `/metrics` and tests.

use std::sync::atomic::{AtomicU64, Ordering};

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
