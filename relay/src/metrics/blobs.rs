//! The series of media blobs: transfers by outcome, bytes in and out, what is stored, hash
//! mismatches and garbage collection.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// How a blob transfer ended, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum TransferOutcome {
    /// Upload: stored (hash checked, durable). Download: sent to the end.
    Done,
    /// Upload: the blob was held already; nothing was sent.
    Deduplicated,
    /// The stream ended early (an upload keeps its partial copy for resuming).
    Interrupted,
    /// Refused before any data: not registered, too large, over quota, disk low, not found.
    Refused,
    /// Upload: the bytes did not hash to the blob id; the partial copy was deleted.
    HashMismatch,
    /// The relay failed (storage or file I/O).
    Failed,
}

/// Upload or download, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// From a device to this relay.
    Upload,
    /// From this relay to a device.
    Download,
    /// From another relay to this one (a device's download of a blob held elsewhere).
    Fetch,
    /// From this relay to another relay that fetches it.
    Serve,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    direction: Direction,
    outcome: TransferOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

/// `tidings_blob_*` series.
#[derive(Debug, Clone, Default)]
pub struct BlobMetrics {
    transfers: Family<TransferLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    stored: Gauge,
    stored_bytes: Gauge,
    collected: Counter,
}

impl BlobMetrics {
    /// New series, registered in `registry` (the `tidings_` one).
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "blob_transfers",
            "Blob transfers by direction (upload and download with devices, fetch from and serve to other relays) and outcome",
            metrics.transfers.clone(),
        );
        registry.register(
            "blob_bytes",
            "Blob bytes received from devices (upload) or relays (fetch), sent to devices (download) or relays (serve)",
            metrics.bytes.clone(),
        );
        registry.register(
            "blobs_stored",
            "Whole media blobs held on disk",
            metrics.stored.clone(),
        );
        registry.register(
            "blobs_stored_bytes",
            "Bytes of the whole media blobs held on disk",
            metrics.stored_bytes.clone(),
        );
        registry.register(
            "blobs_collected",
            "Media blobs deleted by garbage collection (unreferenced past the retention time)",
            metrics.collected.clone(),
        );
        metrics
    }

    /// Counts one transfer's end.
    pub fn transfer(&self, direction: Direction, outcome: TransferOutcome) {
        self.transfers
            .get_or_create(&TransferLabels { direction, outcome })
            .inc();
    }

    /// Transfers that ended so, so far.
    pub fn transfers(&self, direction: Direction, outcome: TransferOutcome) -> u64 {
        self.transfers
            .get_or_create(&TransferLabels { direction, outcome })
            .get()
    }

    /// Counts blob bytes moved.
    pub fn bytes(&self, direction: Direction, bytes: u64) {
        self.bytes
            .get_or_create(&DirectionLabels { direction })
            .inc_by(bytes);
    }

    /// Blob bytes moved so far in `direction`.
    pub fn bytes_total(&self, direction: Direction) -> u64 {
        self.bytes
            .get_or_create(&DirectionLabels { direction })
            .get()
    }

    /// Sets what is held on disk.
    pub fn set_stored(&self, blobs: u64, bytes: u64) {
        self.stored.set(i64::try_from(blobs).unwrap_or(i64::MAX));
        self.stored_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts one blob stored.
    pub fn stored_one(&self, bytes: u64) {
        self.stored.inc();
        self.stored_bytes
            .inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts blobs garbage collection deleted.
    pub fn collected(&self, blobs: usize) {
        self.collected.inc_by(blobs as u64);
    }

    /// Blobs garbage collection deleted so far.
    pub fn collected_total(&self) -> u64 {
        self.collected.get()
    }
}
