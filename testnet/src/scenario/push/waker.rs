//! What an app's push handler does: each push rings its device's doorbell, and the device
//! wakes (connect, drain, ack, disconnect) with `Client::wake`; every wake is logged.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tidings_client::Client;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::now_ms;

/// How long one wake may take (connect, drain, ack, send, disconnect).
const WAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Tries of one wake whose connection failed (an app would try again too).
const WAKE_ATTEMPTS: u32 = 3;

/// Pause between those tries.
const WAKE_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Where a device's pushes ring: the earliest push not yet answered by a wake, and the
/// signal that wakes the device's task.
#[derive(Debug, Default)]
pub struct Doorbell {
    /// Arrival (ms since the epoch) of the earliest push since the last wake started.
    first_unanswered_ms: Mutex<Option<u64>>,
    ring: Notify,
}

impl Doorbell {
    /// A push arrived at `arrived_ms`.
    pub fn ring(&self, arrived_ms: u64) {
        if let Ok(mut first) = self.first_unanswered_ms.lock() {
            first.get_or_insert(arrived_ms);
        }
        // Stores a permit when the device is awake: it wakes again after.
        self.ring.notify_one();
    }

    /// Waits for a ring; returns the arrival of the earliest push it answers.
    pub(super) async fn answer(&self) -> Option<u64> {
        self.ring.notified().await;
        self.first_unanswered_ms
            .lock()
            .ok()
            .and_then(|mut first| first.take())
    }
}

/// One wake of one device.
#[derive(Debug, Clone)]
pub struct Wakeup {
    /// The device (index into the clients).
    pub device: usize,
    /// Arrival of the earliest push this wake answers (ms since the epoch).
    pub push_ms: u64,
    /// When the wake started and ended (ms since the epoch).
    pub started_ms: u64,
    /// End of the wake (its last try).
    pub ended_ms: u64,
    /// New messages the wake stored (`WakeReport::messages`).
    pub messages: usize,
    /// Whether every try failed.
    pub failed: bool,
}

impl Wakeup {
    /// Whether a message stored at `stored_ms` was stored during this wake.
    pub fn covers(&self, stored_ms: u64) -> bool {
        (self.started_ms..=self.ended_ms).contains(&stored_ms)
    }
}

/// The devices' wake tasks and their log.
pub struct Wakers {
    tasks: JoinSet<()>,
    stop: CancellationToken,
    log: Arc<Mutex<Vec<Wakeup>>>,
    running: Arc<AtomicUsize>,
}

impl Wakers {
    /// One task per device, each waking `clients[i]` when `doorbells[i]` rings.
    pub fn start(clients: &[Client], doorbells: &[Arc<Doorbell>]) -> Self {
        let stop = CancellationToken::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for (device, (client, doorbell)) in clients.iter().zip(doorbells).enumerate() {
            let woken = Woken {
                device,
                client: client.clone(),
                doorbell: doorbell.clone(),
                log: log.clone(),
                running: running.clone(),
            };
            tasks.spawn(woken.serve(stop.clone()));
        }
        Self {
            tasks,
            stop,
            log,
            running,
        }
    }

    /// Whether a device is awake right now.
    pub fn busy(&self) -> bool {
        self.running.load(Ordering::SeqCst) > 0
    }

    /// When the last wake ended (ms since the epoch), if any did.
    pub fn last_ended_ms(&self) -> Option<u64> {
        let log = self.log.lock().ok()?;
        log.iter().map(|wakeup| wakeup.ended_ms).max()
    }

    /// Lets running wakes finish, stops the tasks, and returns every wake.
    pub async fn stop(mut self) -> Vec<Wakeup> {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.log
            .lock()
            .map(|mut log| std::mem::take(&mut *log))
            .unwrap_or_default()
    }
}

/// One device's wake task.
struct Woken {
    device: usize,
    client: Client,
    doorbell: Arc<Doorbell>,
    log: Arc<Mutex<Vec<Wakeup>>>,
    running: Arc<AtomicUsize>,
}

impl Woken {
    async fn serve(self, stop: CancellationToken) {
        loop {
            let push_ms = tokio::select! {
                _ = stop.cancelled() => return,
                answered = self.doorbell.answer() => answered,
            };
            // A ring whose push an earlier wake already took: that wake covered it.
            let Some(push_ms) = push_ms else { continue };
            self.running.fetch_add(1, Ordering::SeqCst);
            let wakeup = self.wake(push_ms).await;
            if let Ok(mut log) = self.log.lock() {
                log.push(wakeup);
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes the device (trying again if it cannot connect).
    async fn wake(&self, push_ms: u64) -> Wakeup {
        let started_ms = now_ms();
        let mut wakeup = Wakeup {
            device: self.device,
            push_ms,
            started_ms,
            ended_ms: started_ms,
            messages: 0,
            failed: true,
        };
        for attempt in 1..=WAKE_ATTEMPTS {
            match self.client.wake(WAKE_TIMEOUT).await {
                Ok(report) => {
                    wakeup.messages = report.messages;
                    wakeup.failed = false;
                    break;
                }
                Err(error) => {
                    tracing::warn!(device = self.device, attempt, %error, "a wake failed");
                    tokio::time::sleep(WAKE_RETRY_PAUSE).await;
                }
            }
        }
        wakeup.ended_ms = now_ms();
        tracing::debug!(?wakeup, "woke");
        wakeup
    }
}
