//! The disk-space floor: below it the relay refuses work that grows its store.
//!
//! A background task measures the data dir's filesystem every few seconds (`statvfs`, the
//! space unprivileged users may still take). While free space is below the floor, sends,
//! forwards, registrations, key uploads and descriptors are answered `storage_full` (a
//! transient code: senders retry); reads and acks go on, and acks free space.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tidings_protocol::{ErrorAnswer, ErrorCode};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, Refusal};

/// How often free space is measured.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The floor and whether the disk is below it.
pub(crate) struct DiskFloor {
    path: PathBuf,
    floor: u64,
    low: AtomicBool,
    metrics: Arc<Metrics>,
}

impl DiskFloor {
    /// A floor of `floor` free bytes on the filesystem holding `path`, measured once now.
    pub fn new(path: &Path, floor: u64, metrics: Arc<Metrics>) -> Arc<Self> {
        let disk = Arc::new(Self {
            path: path.to_path_buf(),
            floor,
            low: AtomicBool::new(false),
            metrics,
        });
        disk.check();
        disk
    }

    /// Measures free space and updates the verdict. A failed measurement keeps the last one.
    pub fn check(&self) {
        let free = match nix::sys::statvfs::statvfs(&self.path) {
            Ok(stat) => stat.blocks_available().saturating_mul(stat.fragment_size()),
            Err(error) => {
                tracing::warn!(%error, path = %self.path.display(), "cannot measure free disk space");
                return;
            }
        };
        let low = free < self.floor;
        let was = self.low.swap(low, Ordering::Relaxed);
        if low != was {
            if low {
                tracing::error!(
                    free,
                    floor = self.floor,
                    "free disk space is below the floor: refusing new work"
                );
            } else {
                tracing::info!(
                    free,
                    floor = self.floor,
                    "free disk space is above the floor again"
                );
            }
        }
        self.metrics.limits.disk(free, low);
    }

    /// Measures again every few seconds until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let disk = self.clone();
            if tokio::task::spawn_blocking(move || disk.check())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Err(storage_full) while the disk is below the floor (and counts the refusal).
    pub fn admit(&self) -> Result<(), ErrorAnswer> {
        if !self.low.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.metrics.limits.refused(Refusal::DiskLow);
        Err(ErrorAnswer::new(
            ErrorCode::StorageFull,
            "the relay's disk is nearly full; retry later",
        ))
    }
}
