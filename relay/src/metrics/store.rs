//! The store writer's own metrics handle: commit latency and failures, queue depths.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use prometheus_client::metrics::{
    counter::Counter,
    gauge::Gauge,
    histogram::{Histogram, exponential_buckets},
};

/// The store writer's series: commit latency and failures, outbox and mailbox depth, and the
/// envelopes other relays took off the outbox. Cheap to clone (the series are shared).
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    pub(super) commit_seconds: Histogram,
    pub(super) commit_failures: Counter,
    pub(super) outbox_envelopes: Gauge,
    pub(super) mailbox_envelopes: Gauge,
    pub(super) forwarded: Counter,
    pub(super) writer_running: Arc<AtomicBool>,
    pub(super) last_commit_failed: Arc<AtomicBool>,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            // 50 µs to ~3.3 s.
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            commit_failures: Counter::default(),
            outbox_envelopes: Gauge::default(),
            mailbox_envelopes: Gauge::default(),
            forwarded: Counter::default(),
            writer_running: Arc::new(AtomicBool::new(false)),
            last_commit_failed: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Marks the store writer as running until dropped (also when its thread unwinds).
#[derive(Debug)]
pub struct WriterRunning(Arc<AtomicBool>);

impl Drop for WriterRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl StoreMetrics {
    /// Called by the writer thread as it starts; the guard marks it stopped when dropped.
    pub fn writer_started(&self) -> WriterRunning {
        self.writer_running.store(true, Ordering::Relaxed);
        WriterRunning(self.writer_running.clone())
    }

    /// Records one commit: how long it took and whether it reached the disk.
    pub fn commit(&self, took: Duration, committed: bool) {
        if committed {
            self.commit_seconds.observe(took.as_secs_f64());
        } else {
            self.commit_failures.inc();
        }
        self.last_commit_failed.store(!committed, Ordering::Relaxed);
    }

    /// Sets the outbox depth (entries waiting for other relays).
    pub fn set_outbox(&self, entries: u64) {
        self.outbox_envelopes.set(saturating_i64(entries));
    }

    /// Sets the number of entries waiting in all mailboxes.
    pub fn set_mailboxes(&self, entries: u64) {
        self.mailbox_envelopes.set(saturating_i64(entries));
    }

    /// Counts outbox entries another relay has durably taken.
    pub fn forwarded(&self, entries: usize) {
        self.forwarded.inc_by(entries as u64);
    }
}

pub(super) fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
