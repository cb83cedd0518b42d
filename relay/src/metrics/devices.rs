//! The series counting what became of published device lists, and the devices they revoked.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// What became of one published device list.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
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

impl DeviceListVerdict {
    /// The label value (`verdict="stored"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceListVerdict::Stored => "stored",
            DeviceListVerdict::Stale => "stale",
            DeviceListVerdict::Forged => "forged",
            DeviceListVerdict::OverLimit => "over_limit",
            DeviceListVerdict::WrongUser => "wrong_user",
            DeviceListVerdict::MissingSelf => "missing_self",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

/// `tidings_device_lists_total`, by verdict; `tidings_devices_revoked_total`.
#[derive(Debug, Clone, Default)]
pub struct DeviceListMetrics {
    verdicts: Family<VerdictLabels, Counter>,
    revoked: Counter,
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
        registry.register(
            "devices_revoked",
            "Registered devices revoked because a newer device list of their account left them out",
            metrics.revoked.clone(),
        );
        metrics
    }

    /// Counts devices a stored list revoked.
    pub fn revoked(&self, devices: usize) {
        self.revoked.inc_by(devices as u64);
    }

    /// How many devices stored lists revoked.
    pub fn revoked_total(&self) -> u64 {
        self.revoked.get()
    }

    /// Counts one published list.
    pub fn count(&self, verdict: DeviceListVerdict) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                verdict: verdict.as_str(),
            })
            .inc();
    }

    /// How many published lists got `verdict`.
    pub fn verdicts(&self, verdict: DeviceListVerdict) -> u64 {
        self.verdicts
            .get_or_create(&VerdictLabels {
                verdict: verdict.as_str(),
            })
            .get()
    }
}
