//! The browser runtime: the page's event loop, the browser's timers and `performance.now()`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt, channel::oneshot};
use futures_timer::Delay;

use super::{Elapsed, JoinError};

/// A point on the monotonic clock (`performance.now()`).
pub type Instant = web_time::Instant;

/// Runs `task` on the page's (worker's) event loop to its end; nothing waits for it.
pub fn spawn(task: impl Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(task);
}

/// Runs `work` now, on this thread: the device runs in a Dedicated Worker, where blocking
/// (OPFS's synchronous access) stalls no page, and there is no other thread to run it on.
pub fn spawn_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let (done, result) = oneshot::channel();
    let _ = done.send(work());
    JoinHandle(result)
}

/// The result of [`spawn_blocking`], to await.
pub struct JoinHandle<T>(oneshot::Receiver<T>);

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0
            .poll_unpin(cx)
            .map(|done| done.map_err(|_| JoinError))
    }
}

/// Longest single browser timer: `setTimeout` fires at once for delays past 2^31 - 1 ms, so
/// longer waits are made of several.
pub const MAX_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// Waits `duration` (browser timers).
pub async fn sleep(duration: Duration) {
    match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until(deadline).await,
        // Past the clock's range: never.
        None => futures::future::pending().await,
    }
}

/// Waits until `deadline`.
pub async fn sleep_until(deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        Delay::new(left.min(MAX_TIMER)).await;
    }
}

/// Runs `work` for at most `limit`.
pub async fn timeout<F: Future>(limit: Duration, work: F) -> Result<F::Output, Elapsed> {
    within(work, sleep(limit)).await
}

/// Runs `work` until `deadline` at most.
pub async fn timeout_at<F: Future>(deadline: Instant, work: F) -> Result<F::Output, Elapsed> {
    within(work, sleep_until(deadline)).await
}

async fn within<F: Future>(work: F, limit: impl Future<Output = ()>) -> Result<F::Output, Elapsed> {
    let work = std::pin::pin!(work);
    let limit = std::pin::pin!(limit);
    match futures::future::select(work, limit).await {
        futures::future::Either::Left((output, _)) => Ok(output),
        futures::future::Either::Right(((), _)) => Err(Elapsed),
    }
}

/// Ticks every `period`, the first time at once; a late tick delays the following ones
/// (it never bursts to catch up), as the native one does.
pub fn interval(period: Duration) -> Interval {
    Interval {
        period: period.min(MAX_TIMER),
        next: Delay::new(Duration::ZERO),
    }
}

/// See [`interval`].
pub struct Interval {
    period: Duration,
    next: Delay,
}

impl Interval {
    /// Ready at the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        match self.next.poll_unpin(cx) {
            Poll::Ready(()) => {
                self.next.reset(self.period);
                Poll::Ready(Instant::now())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) -> Instant {
        futures::future::poll_fn(|cx| self.poll_tick(cx)).await
    }
}
