//! The series counting what became of published device lists.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// What became of one published device list, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum DeviceListVerdict {
    /// Stored: it is the user's list now.
    Stored,
    /// Its version is not above the held list's.
    Stale,
    /// Its signature (or shape) does not verify.
    Forged,
    /// It names more devices than `limits.max_devices_per_account`.
    OverLimit,
    /// It is the list of another user than the publishing session's.
    WrongUser,
    /// It does not name the publishing device.
    MissingSelf,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: DeviceListVerdict,
}

/// `tidings_device_lists_total`, by verdict.
#[derive(Debug, Clone, Default)]
pub struct DeviceListMetrics {
    verdicts: Family<VerdictLabels, Counter>,
}

impl DeviceListMetrics {
    /// New series, registered in `registry` (the `tidings_` one).
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "device_lists",
            "Device lists published by devices of users homed here, by verdict",
            metrics.verdicts.clone(),
        );
        metrics
    }

    /// Counts one published list.
    pub fn count(&self, verdict: DeviceListVerdict) {
        self.verdicts
            .get_or_create(&VerdictLabels { verdict })
            .inc();
    }

    /// How many published lists got `verdict`.
    pub fn verdicts(&self, verdict: DeviceListVerdict) -> u64 {
        self.verdicts
            .get_or_create(&VerdictLabels { verdict })
            .get()
    }
}
