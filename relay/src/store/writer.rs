//! The writer thread: drains queued operations into one transaction per commit.

use std::{sync::Arc, thread::JoinHandle};

use redb::{Database, ReadableDatabase, ReadableTableMetadata};
use tidings_protocol::store::StoreError;
use tokio::sync::{Notify, mpsc};

use super::{
    config::StoreConfig,
    op::WriteOp,
    slot::DbSlot,
    txn::{self, WriterState},
};
use crate::{mailbox::Hub, metrics::StoreMetrics};

/// Most operations applied in one commit.
const MAX_OPS_PER_COMMIT: usize = 512;
/// Most envelopes stored in one commit.
const MAX_ENVELOPES_PER_COMMIT: usize = 8192;

/// Joins the writer thread once every [`super::Store`] handle is dropped.
pub struct WriterHandle {
    thread: Option<JoinHandle<()>>,
    metrics: StoreMetrics,
}

impl WriterHandle {
    /// The writer's series (commit latency, outbox and mailbox depth), for `/metrics`.
    pub fn metrics(&self) -> StoreMetrics {
        self.metrics.clone()
    }

    /// Waits (on the blocking pool) until the writer has committed everything queued and
    /// exited. Call after dropping every `Store` clone.
    pub async fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Where the writer reports what it committed.
pub struct Outputs {
    pub hub: Arc<Hub>,
    pub outbox: Arc<Notify>,
}

pub fn spawn(
    db: Arc<DbSlot>,
    receiver: mpsc::Receiver<WriteOp>,
    config: StoreConfig,
    outputs: Outputs,
) -> Result<WriterHandle, StoreError> {
    let state = WriterState::load(&*db.get()?)?;
    let metrics = StoreMetrics::default();
    metrics.set_outbox(state.outbox_len);
    if let Some(entries) = mailbox_entries(&*db.get()?) {
        metrics.set_mailboxes(entries);
    }
    let running = metrics.writer_started();
    let thread_metrics = metrics.clone();
    let thread = std::thread::Builder::new()
        .name("tidings-store-writer".into())
        .spawn(move || {
            let _running = running;
            run(&db, receiver, &config, state, &outputs, &thread_metrics)
        })
        .map_err(|error| StoreError::io("starting the store writer thread", error))?;
    Ok(WriterHandle {
        thread: Some(thread),
        metrics,
    })
}

/// Entries waiting in all mailboxes (redb keeps each table's length: no scan).
fn mailbox_entries(db: &Database) -> Option<u64> {
    let txn = db.begin_read().ok()?;
    let table = txn.open_table(super::tables::MAILBOX).ok()?;
    table.len().ok()
}

fn run(
    slot: &DbSlot,
    mut receiver: mpsc::Receiver<WriteOp>,
    config: &StoreConfig,
    mut state: WriterState,
    outputs: &Outputs,
    metrics: &StoreMetrics,
) {
    let mut batch = Vec::with_capacity(MAX_OPS_PER_COMMIT);
    while let Some(first) = receiver.blocking_recv() {
        let mut weight = first.weight();
        batch.push(first);
        while batch.len() < MAX_OPS_PER_COMMIT && weight < MAX_ENVELOPES_PER_COMMIT {
            match receiver.try_recv() {
                Ok(op) => {
                    weight += op.weight();
                    batch.push(op);
                }
                Err(_) => break,
            }
        }
        let db = match slot.get() {
            Ok(db) => db,
            // A reopen failed before: try again now that there is work.
            Err(_) => match reopen(slot, &mut state) {
                Ok(db) => db,
                Err(error) => {
                    tracing::error!(%error, "the database is still closed; refusing this batch");
                    for op in batch.drain(..) {
                        op.answer(Err(&error));
                    }
                    continue;
                }
            },
        };
        if !commit_batch(&db, &mut batch, config, &mut state, outputs, metrics) {
            // redb takes no more writes after a failed commit until it is reopened.
            drop(db);
            if let Err(error) = reopen(slot, &mut state) {
                tracing::error!(%error, "cannot reopen the database; will retry with the next batch");
            }
        }
    }
    tracing::debug!("store writer stopped: every handle dropped");
}

/// Closes and opens the database again (redb repairs it to its last durable commit) and
/// rereads the writer's state, keeping outbox numbers that were already handed out unused.
fn reopen(slot: &DbSlot, state: &mut WriterState) -> Result<Arc<Database>, StoreError> {
    let db = slot.reopen()?;
    let durable = WriterState::load(&db)?;
    *state = WriterState {
        outbox_len: durable.outbox_len,
        outbox_seq: durable.outbox_seq.max(state.outbox_seq),
    };
    Ok(db)
}

/// Applies and commits one batch, then answers every operation in it; false if the commit
/// failed (every operation was answered with the error).
fn commit_batch(
    db: &Database,
    batch: &mut Vec<WriteOp>,
    config: &StoreConfig,
    state: &mut WriterState,
    outputs: &Outputs,
    metrics: &StoreMetrics,
) -> bool {
    let started = std::time::Instant::now();
    let ops = batch.len();
    let applied = txn::apply_batch(db, config, state, |tables| {
        for op in batch.iter_mut() {
            op.apply(tables)?;
        }
        Ok(())
    });
    metrics.commit(started.elapsed(), applied.is_ok());
    match applied {
        Ok(effects) => {
            metrics.forwarded(effects.forwarded);
            metrics.set_outbox(state.outbox_len);
            if let Some(entries) = mailbox_entries(db) {
                metrics.set_mailboxes(entries);
            }
            // Pushes and answers go out only now that the commit is durable.
            outputs.hub.publish_all(&effects.publications);
            if effects.outbox_grew {
                outputs.outbox.notify_one();
            }
            for op in batch.drain(..) {
                op.answer(Ok(()));
            }
        }
        Err(error) => {
            tracing::error!(%error, ops, "store commit failed; every operation in it is answered with an error");
            for op in batch.drain(..) {
                op.answer(Err(&error));
            }
            return false;
        }
    }
    tracing::trace!(
        ops,
        elapsed_us = started.elapsed().as_micros() as u64,
        "committed batch"
    );
    true
}
