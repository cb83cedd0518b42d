//! Series for the storage and registration limits: what they refused, and the disk floor.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Why a request that would have grown the store was refused (envelopes refused for a quota
/// are counted in `tidings_envelopes_rejected_total` by error code instead).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Refusal {
    /// A new account from a source over its registration rate.
    RegistrationRate,
    /// A new account under open registration past `registration.max_accounts`.
    AccountCap,
    /// Group descriptors of a group with no member here.
    DescriptorNoMember,
    /// Group descriptors from a relay over its descriptor rate.
    DescriptorRate,
    /// Anything that grows the store, while free disk space is below the floor.
    DiskLow,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: Refusal,
}

/// The limits' series, registered under `tidings_`.
#[derive(Debug, Clone, Default)]
pub struct LimitMetrics {
    refused: Family<RefusalLabels, Counter>,
    disk_low: Gauge,
    disk_free_bytes: Gauge,
}

impl LimitMetrics {
    /// New series, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "refused",
            "Requests refused because they would grow the store past a limit, by reason",
            metrics.refused.clone(),
        );
        registry.register(
            "disk_low",
            "1 while free disk space is below the floor (new work is refused), else 0",
            metrics.disk_low.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Free bytes on the data dir's filesystem, for unprivileged users",
            metrics.disk_free_bytes.clone(),
        );
        metrics
    }

    /// Counts one refusal.
    pub fn refused(&self, reason: Refusal) {
        self.refused.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// How many requests were refused for `reason`.
    pub fn refusals(&self, reason: Refusal) -> u64 {
        self.refused.get_or_create(&RefusalLabels { reason }).get()
    }

    /// Whether the last disk check found free space below the floor.
    pub fn disk_low(&self) -> bool {
        self.disk_low.get() != 0
    }

    /// Records the last disk check.
    pub fn disk(&self, free_bytes: u64, low: bool) {
        self.disk_free_bytes
            .set(i64::try_from(free_bytes).unwrap_or(i64::MAX));
        self.disk_low.set(i64::from(low));
    }
}
