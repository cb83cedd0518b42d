//! The runtime the client core runs on, chosen per target: spawning, blocking work, timers and clocks.
//!
//! Natively it is tokio (tasks, the blocking pool, tokio's timers and `Instant`). In the
//! browser (`wasm32-unknown-unknown`) tokio's runtime, timers and `SystemTime::now` are
//! missing or panic, so tasks run on the page's event loop (`wasm-bindgen-futures`), timers
//! are the browser's (`futures-timer`), the monotonic clock is `performance.now()`
//! (`web-time`), and "blocking" work runs inline: the device lives in a Dedicated Worker,
//! where OPFS's synchronous file access is allowed and blocks no page.
//!
//! tokio's channels, locks and `select!` build for both targets and are used directly.

#[cfg(target_arch = "wasm32")]
mod browser;
pub mod files;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
mod opfs_files;

#[cfg(target_arch = "wasm32")]
pub use browser::{
    Instant, Interval, JoinHandle, interval, sleep, sleep_until, spawn, spawn_blocking, timeout,
    timeout_at,
};
#[cfg(not(target_arch = "wasm32"))]
pub use native::{
    Instant, Interval, JoinHandle, interval, sleep, sleep_until, spawn, spawn_blocking, timeout,
    timeout_at,
};

/// The wall clock, in milliseconds since the Unix epoch (the browser's `Date.now()` there).
pub use tidings_protocol::now_ms;

/// A spawned task or blocking job ended without a result (it panicked or was cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the task ended without a result")]
pub struct JoinError;

/// The time limit of [`timeout`] or [`timeout_at`] ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the time limit ran out")]
pub struct Elapsed;
