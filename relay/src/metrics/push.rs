//! The series of Web Push: pushes sent, failed by reason, coalesced, subscriptions dropped
//! and held.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Why a push POST did not succeed, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum PushFailure {
    /// The push service answered 4xx (other than 404/410, which drop the subscription).
    Status4xx,
    /// The push service answered 5xx.
    Status5xx,
    /// The push service answered 429 (too many requests).
    Status429,
    /// The POST took longer than `push.timeout_secs`.
    Timeout,
    /// No connection (DNS, TCP, TLS).
    Connect,
    /// The endpoint resolves to an address the SSRF guard refuses.
    RefusedAddress,
    /// The relay could not build the request (a bad key or URL).
    Build,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    reason: PushFailure,
}

/// `tidings_push_*` series.
#[derive(Debug, Clone, Default)]
pub struct PushMetrics {
    sent: Counter,
    failed: Family<FailureLabels, Counter>,
    coalesced: Counter,
    dropped: Counter,
    subscriptions: Gauge,
}

impl PushMetrics {
    /// New series, registered in `registry` (the `tidings_` one).
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "push_sent",
            "Pushes a push service accepted (2xx)",
            metrics.sent.clone(),
        );
        registry.register(
            "push_failed",
            "Push POSTs that failed, by reason (each try counts; 404/410 are counted as dropped subscriptions)",
            metrics.failed.clone(),
        );
        registry.register(
            "push_coalesced",
            "Mailbox entries folded into a push that counted an earlier one",
            metrics.coalesced.clone(),
        );
        registry.register(
            "push_subscriptions_dropped",
            "Push subscriptions deleted because the push service answered 404 or 410",
            metrics.dropped.clone(),
        );
        registry.register(
            "push_subscriptions",
            "Devices with a push subscription",
            metrics.subscriptions.clone(),
        );
        metrics
    }

    /// Counts one push accepted.
    pub fn sent(&self) {
        self.sent.inc();
    }

    /// Pushes accepted so far.
    pub fn sent_total(&self) -> u64 {
        self.sent.get()
    }

    /// Counts one failed POST.
    pub fn failed(&self, reason: PushFailure) {
        self.failed.get_or_create(&FailureLabels { reason }).inc();
    }

    /// POSTs failed so far for `reason`.
    pub fn failed_total(&self, reason: PushFailure) -> u64 {
        self.failed.get_or_create(&FailureLabels { reason }).get()
    }

    /// Counts entries folded into a push beside its first.
    pub fn coalesced(&self, entries: u64) {
        self.coalesced.inc_by(entries);
    }

    /// Entries folded so far.
    pub fn coalesced_total(&self) -> u64 {
        self.coalesced.get()
    }

    /// Counts one subscription dropped on 404/410.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// Subscriptions dropped so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.get()
    }

    /// Sets how many devices have a subscription.
    pub fn set_subscriptions(&self, devices: usize) {
        self.subscriptions
            .set(i64::try_from(devices).unwrap_or(i64::MAX));
    }
}
