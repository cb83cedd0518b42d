//! `tidings-testnet bench NAME`: bounded benchmarks against relay processes on loopback,
//! with real clients (their stores, Olm sessions and commits) on both ends.

pub mod drain;
pub mod latency;
pub mod throughput;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tidings_client::{Client, Event, Session};
use tidings_protocol::EnvelopeId;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{report::Percentiles, scenario::users};

/// The contact name each side of a pair gives the other.
pub const PEER: &str = "peer";

/// When each message was handed to its sender's client, to time its arrival.
#[derive(Clone, Default)]
pub struct SendTimes(Arc<Mutex<HashMap<EnvelopeId, Instant>>>);

impl SendTimes {
    /// Notes that `ids` were queued now.
    pub fn queued(&self, ids: impl IntoIterator<Item = EnvelopeId>) {
        let now = Instant::now();
        let mut times = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        times.extend(ids.into_iter().map(|id| (id, now)));
    }

    /// Milliseconds since `id` was queued, if it was.
    pub fn since(&self, id: &EnvelopeId) -> Option<f64> {
        let times = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        times.get(id).map(|at| at.elapsed().as_secs_f64() * 1000.0)
    }
}

/// Makes each pair (sender `2i`, receiver `2i + 1`) contacts of each other, and sends one
/// message each way so the Olm sessions exist before anything is timed.
pub async fn introduce_pairs(clients: &[Client]) -> anyhow::Result<()> {
    for pair in clients.chunks_exact(2) {
        let (sender, receiver) = (&pair[0], &pair[1]);
        sender.add_contact(PEER, &receiver.card(None)?)?;
        receiver.add_contact(PEER, &sender.card(None)?)?;
        for (from, to) in [(sender, receiver), (receiver, sender)] {
            let mut session = users::connect(from).await;
            session.send_text(PEER, "hello").await?;
            session.close().await;
            let mut session = users::connect(to).await;
            session.sync(std::time::Duration::from_secs(5)).await?;
            session.close().await;
        }
    }
    Ok(())
}

/// Queues `texts` to the pair's peer in one local commit, notes when, and sends them;
/// returns how many the relay accepted (anything refused or left waiting is an error).
pub async fn send_round(
    client: &Client,
    session: &mut Session,
    texts: Vec<String>,
    times: &SendTimes,
) -> anyhow::Result<usize> {
    let queued = client.queue_texts(PEER, texts).await?;
    times.queued(queued.iter().map(|record| record.id));
    let report = session.flush().await?;
    anyhow::ensure!(
        report.failed.is_empty() && report.waiting.is_empty(),
        "the relay did not take everything: {:?} {:?}",
        report.failed,
        report.waiting
    );
    Ok(report.sent.len())
}

/// Receiving devices that stay subscribed and time every message against [`SendTimes`].
pub struct Receivers {
    /// When each message was queued (senders note it here).
    pub times: SendTimes,
    latencies: Arc<Mutex<Vec<f64>>>,
    delivered: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Receivers {
    /// Subscribes each client and starts counting.
    pub fn start<'a>(clients: impl IntoIterator<Item = &'a Client>) -> Self {
        let mut receivers = Self {
            times: SendTimes::default(),
            latencies: Arc::default(),
            delivered: Arc::default(),
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        };
        for client in clients {
            receivers.tasks.spawn(receive(
                client.clone(),
                receivers.times.clone(),
                receivers.latencies.clone(),
                receivers.delivered.clone(),
                receivers.stop.clone(),
            ));
        }
        receivers
    }

    /// Waits until `count` messages arrived, or `timeout` passed.
    pub async fn wait_for(&self, count: usize, timeout: Duration) {
        let give_up = Instant::now() + timeout;
        while self.delivered.load(Ordering::Relaxed) < count && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the receivers; returns how many messages arrived and their latencies.
    pub async fn finish(mut self) -> anyhow::Result<(usize, Percentiles)> {
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            joined??;
        }
        let latencies = std::mem::take(
            &mut *self
                .latencies
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        Ok((
            self.delivered.load(Ordering::Relaxed),
            Percentiles::of(latencies),
        ))
    }
}

/// Stays subscribed, timing every message that arrives, until `stop`.
async fn receive(
    client: Client,
    times: SendTimes,
    latencies: Arc<Mutex<Vec<f64>>>,
    delivered: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut session = users::connect(&client).await;
    session.subscribe().await?;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = session.next_event() => event?,
        };
        if let Event::Message(message) = event
            && let Some(ms) = times.since(&message.id)
        {
            latencies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(ms);
            delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
    session.close().await;
    Ok(())
}
