//! The native runtime: tokio's tasks, blocking pool, timers and `Instant`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use super::{Elapsed, JoinError};

/// A point on the monotonic clock (tokio's, so a paused test clock applies).
pub type Instant = tokio::time::Instant;

/// Runs `task` in the background to its end; nothing waits for it.
pub fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(task);
}

/// Runs `work` on tokio's blocking pool. The handle may be awaited again after an await of it
/// was cancelled; the work runs to its end either way.
pub fn spawn_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    JoinHandle(tokio::task::spawn_blocking(work))
}

/// The result of [`spawn_blocking`], to await.
pub struct JoinHandle<T>(tokio::task::JoinHandle<T>);

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|done| done.map_err(|_| JoinError))
    }
}

/// Waits `duration`.
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Waits until `deadline`.
pub async fn sleep_until(deadline: Instant) {
    tokio::time::sleep_until(deadline).await;
}

/// Runs `work` for at most `limit`.
pub async fn timeout<F: Future>(limit: Duration, work: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(limit, work).await.map_err(|_| Elapsed)
}

/// Runs `work` until `deadline` at most.
pub async fn timeout_at<F: Future>(deadline: Instant, work: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| Elapsed)
}

/// Ticks every `period`, the first time at once; a late tick delays the following ones
/// (it never bursts to catch up).
pub fn interval(period: Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Interval(interval)
}

/// See [`interval`].
pub struct Interval(tokio::time::Interval);

impl Interval {
    /// Ready at the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        self.0.poll_tick(cx)
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) -> Instant {
        self.0.tick().await
    }
}
