//! A queued write: its work on the batch's tables and the typed reply it is answered on.
//!
//! Each [`super::Store`] write method queues a closure over [`Tables`] together with the
//! `oneshot` sender for exactly that closure's outcome type, so an operation and its answer
//! are paired by the compiler. The writer sees them only through [`QueuedWrite`]: apply inside
//! the batch's transaction, then answer once the batch's commit is known.
//!
//! Each write is one boxed [`Typed`] (one allocation next to the reply channel's own, and three
//! indirect calls per operation, against a commit that costs tens of microseconds per
//! envelope): the price of "a new operation is one `Store` method plus one `Tables` method".

use tidings_protocol::store::StoreError;
use tokio::sync::oneshot;

use super::txn::Tables;

/// Where a write's outcome goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write as the writer thread holds it, whatever its outcome type.
pub(super) type WriteOp = Box<dyn QueuedWrite>;

/// What the writer does with a queued write.
pub(super) trait QueuedWrite: Send {
    /// How many entries it may store, counted against the batch's limit.
    fn weight(&self) -> usize;

    /// Runs the work on the batch's tables and keeps its outcome until the commit. An error
    /// aborts the whole batch.
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StoreError>;

    /// Answers the caller once the batch's commit is decided: the kept outcome if it was
    /// committed, the batch's error otherwise.
    fn answer(self: Box<Self>, committed: Result<(), &StoreError>);
}

/// A write whose work yields a `T`.
struct Typed<T, F> {
    weight: usize,
    work: Option<F>,
    outcome: Option<T>,
    reply: Reply<T>,
}

/// Packs `work` and its reply channel for the writer.
pub(super) fn queue<T, F>(weight: usize, work: F, reply: Reply<T>) -> WriteOp
where
    T: Send + 'static,
    F: FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send + 'static,
{
    Box::new(Typed {
        weight,
        work: Some(work),
        outcome: None,
        reply,
    })
}

impl<T, F> QueuedWrite for Typed<T, F>
where
    T: Send,
    F: FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send,
{
    fn weight(&self) -> usize {
        self.weight
    }

    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StoreError> {
        if let Some(work) = self.work.take() {
            self.outcome = Some(work(tables)?);
        }
        Ok(())
    }

    fn answer(self: Box<Self>, committed: Result<(), &StoreError>) {
        let result = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => Ok(outcome),
            (Err(error), _) => Err(error.clone()),
            // The writer applies every write of a batch before a commit can succeed; one
            // that was never applied stored nothing, so it must not be answered as done.
            (Ok(()), None) => Err(StoreError::Unavailable {
                reason: "the write was not applied",
            }),
        };
        // The caller may have given up waiting; the write stands either way.
        let _ = self.reply.send(result);
    }
}
