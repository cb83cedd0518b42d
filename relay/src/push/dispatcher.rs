//! The push dispatcher: one task that decides when each device is pushed (coalescing into
//! at most one push per interval, retries with backoff) and runs the POSTs, at most
//! `push.max_in_flight` at once, each bounded by `push.timeout_secs`.
//!
//! It owns the schedule; the per-device counts live in the shared map (see [`super`]), so
//! the store writer never waits for it.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use tidings_protocol::{DeviceId, push::PushSubscription};
use tokio::{sync::mpsc, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    Shared,
    send::{Outcome, Sender},
};
use crate::{config::PushConfig, store::Store};

/// First retry delay; each further try doubles it.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Longest backoff between tries (a `Retry-After` may ask for up to an hour).
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How a finished POST reports back.
struct Done {
    device: DeviceId,
    subscription: Arc<PushSubscription>,
    count: u32,
    outcome: Outcome,
}

/// The dispatcher's state: the schedule and the POSTs under way.
pub(super) struct Dispatcher {
    shared: Arc<Shared>,
    sender: Arc<Sender>,
    store: Store,
    interval: Duration,
    max_in_flight: usize,
    max_attempts: u32,
    woken: mpsc::UnboundedReceiver<DeviceId>,
    posts: JoinSet<Done>,
    /// When each scheduled device is due, ordered; at most one entry per device.
    due: BTreeSet<(Instant, DeviceId)>,
    due_at: HashMap<DeviceId, Instant>,
}

impl Dispatcher {
    pub(super) fn new(
        shared: Arc<Shared>,
        sender: Arc<Sender>,
        store: Store,
        config: &PushConfig,
        woken: mpsc::UnboundedReceiver<DeviceId>,
    ) -> Self {
        Self {
            shared,
            sender,
            store,
            interval: Duration::from_secs(config.interval_secs),
            max_in_flight: config.max_in_flight.max(1),
            max_attempts: config.max_attempts.max(1),
            woken,
            posts: JoinSet::new(),
            due: BTreeSet::new(),
            due_at: HashMap::new(),
        }
    }

    /// Runs until `stop`; POSTs under way are abandoned then.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        loop {
            let next = self.due.first().map(|(at, _)| *at);
            let can_post = self.posts.len() < self.max_in_flight;
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                Some(done) = self.posts.join_next(), if !self.posts.is_empty() => match done {
                    Ok(done) => self.on_done(done),
                    Err(error) => tracing::warn!(%error, "push task ended abnormally"),
                },
                Some(device) = self.woken.recv() => self.on_wake(device),
                () = sleep_until(next), if next.is_some() && can_post => self.start_due(),
            }
        }
        self.posts.abort_all();
    }

    /// Puts `device` on the schedule at `at`, or earlier if it is already due sooner.
    fn schedule(&mut self, device: DeviceId, at: Instant) {
        if let Some(old) = self.due_at.get(&device).copied() {
            if old <= at {
                return;
            }
            self.due.remove(&(old, device));
        }
        self.due.insert((at, device));
        self.due_at.insert(device, at);
    }

    /// New entries for a device that was quiet: push now, or once its interval is over.
    fn on_wake(&mut self, device: DeviceId) {
        let at = {
            let devices = self.shared.devices();
            let Some(state) = devices.get(&device) else {
                return;
            };
            if state.in_flight {
                // Its POST's end puts it back on the schedule.
                return;
            }
            not_before(
                state.last_sent.map(|last| last + self.interval),
                state.retry_at,
            )
        };
        self.schedule(device, at);
    }

    /// Starts the POSTs that are due, as far as the in-flight bound allows.
    fn start_due(&mut self) {
        let now = Instant::now();
        while self.posts.len() < self.max_in_flight {
            let Some(&(at, device)) = self.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.due.pop_first();
            self.due_at.remove(&device);
            let (subscription, count) = {
                let mut devices = self.shared.devices();
                let Some(state) = devices.get_mut(&device) else {
                    continue;
                };
                if state.in_flight {
                    continue;
                }
                let count = std::mem::take(&mut state.pending);
                state.queued = false;
                if count == 0 {
                    // Cancelled: the device subscribed meanwhile.
                    continue;
                }
                state.in_flight = true;
                state.last_sent = Some(now);
                state.retry_at = None;
                (state.subscription.clone(), count)
            };
            let sender = self.sender.clone();
            let store = self.store.clone();
            self.posts.spawn(async move {
                let outcome = sender.send(&subscription, count).await;
                if outcome == Outcome::Gone
                    && let Err(error) = store.drop_push(device, subscription.endpoint.clone()).await
                {
                    tracing::warn!(%error, "gone push subscription not deleted");
                }
                Done {
                    device,
                    subscription,
                    count,
                    outcome,
                }
            });
        }
    }

    /// A POST ended: count it, retry, drop the subscription, or schedule what came meanwhile.
    fn on_done(&mut self, done: Done) {
        let metrics = self.shared.metrics.clone();
        let now = Instant::now();
        let next = {
            let mut devices = self.shared.devices();
            let current = devices
                .get(&done.device)
                .is_some_and(|state| Arc::ptr_eq(&state.subscription, &done.subscription));
            match done.outcome {
                Outcome::Sent => metrics.sent(),
                Outcome::Gone => metrics.dropped(),
                Outcome::Retry { reason, .. } | Outcome::Failed(reason) => metrics.failed(reason),
            }
            if done.outcome == Outcome::Gone && current {
                devices.remove(&done.device);
                metrics.set_subscriptions(devices.len());
                return;
            }
            let Some(state) = devices.get_mut(&done.device) else {
                return;
            };
            state.in_flight = false;
            match done.outcome {
                Outcome::Retry { after, .. } if current => {
                    state.attempt += 1;
                    if state.attempt < self.max_attempts {
                        let delay = after.unwrap_or_else(|| backoff(state.attempt));
                        state.pending = state.pending.saturating_add(done.count);
                        state.retry_at = Some(now + delay);
                        state.retry_at
                    } else {
                        tracing::info!(
                            attempts = state.attempt,
                            "giving up on a push; the subscription is kept"
                        );
                        state.attempt = 0;
                        (state.pending > 0).then(|| self.after_interval(state.last_sent))
                    }
                }
                _ => {
                    state.attempt = 0;
                    (state.pending > 0).then(|| self.after_interval(state.last_sent))
                }
            }
        };
        if let Some(at) = next {
            self.schedule(done.device, at);
        }
    }

    fn after_interval(&self, last_sent: Option<Instant>) -> Instant {
        not_before(last_sent.map(|last| last + self.interval), None)
    }
}

/// The later of now, `a` and `b`.
fn not_before(a: Option<Instant>, b: Option<Instant>) -> Instant {
    let now = Instant::now();
    now.max(a.unwrap_or(now)).max(b.unwrap_or(now))
}

/// The delay before try `attempt + 1`: 1 s doubling, at most [`MAX_BACKOFF`].
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
