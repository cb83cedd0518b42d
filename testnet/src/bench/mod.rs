//! `tidings-testnet bench NAME`: bounded benchmarks against relay processes on loopback,
//! with real clients (their stores, Olm sessions and commits) on both ends.

pub mod connections;
pub mod dht;
pub mod drain;
pub mod fanout;
pub mod latency;
pub mod media;
pub mod relay;
mod rss;
pub mod search;
pub mod throughput;

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use libp2p::Multiaddr;
use tidings_client::{Client, Event, Session};
use tidings_protocol::EnvelopeId;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{report::Percentiles, scenario::users};

/// The contact name each side of a pair gives the other.
pub const PEER: &str = "peer";

/// Users registering at the same time in [`register_many`].
const REGISTER_CONCURRENCY: usize = 32;
/// How long one user may take to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes one user under `dir` per address (named as in [`users::name`]) and registers user
/// `i` at `homes[i]`, several at a time; returns the clients in that order.
pub async fn register_many(dir: &Path, homes: Vec<Multiaddr>) -> anyhow::Result<Vec<Client>> {
    let count = homes.len();
    let slots = Arc::new(Semaphore::new(REGISTER_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for (index, home) in homes.into_iter().enumerate() {
        let dir = dir.join(users::name(index));
        let slots = slots.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            let client = Client::init(&dir, None)?;
            tokio::time::timeout(REGISTER_TIMEOUT, client.register(home, None))
                .await
                .context("registering timed out")??;
            anyhow::Ok((index, client))
        });
    }
    let mut clients: Vec<Option<Client>> = vec![None; count];
    while let Some(joined) = tasks.join_next().await {
        let (index, client) = joined??;
        clients[index] = Some(client);
    }
    Ok(clients.into_iter().flatten().collect())
}

/// Raises this process's soft open-files limit to its hard limit (relay processes started
/// afterwards inherit it); returns the soft limit now in force.
pub fn raise_open_files_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(soft.max(hard))
}

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
    Ok(send_round_to(client, session, PEER, texts, times)
        .await?
        .len())
}

/// As [`send_round`], to `to` (a contact or a group name); returns the ids the relay
/// accepted.
pub async fn send_round_to(
    client: &Client,
    session: &mut Session,
    to: &str,
    texts: Vec<String>,
    times: &SendTimes,
) -> anyhow::Result<Vec<EnvelopeId>> {
    let queued = client.queue_texts(to, texts).await?;
    times.queued(queued.iter().map(|record| record.id));
    let report = session.flush().await?;
    anyhow::ensure!(
        report.failed.is_empty() && report.waiting.is_empty(),
        "the relay did not take everything: {:?} {:?}",
        report.failed,
        report.waiting
    );
    Ok(report.sent.iter().map(|record| record.id).collect())
}

/// One timed message stored by one receiver.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Which receiver, in the order given to [`Receivers::start`].
    pub receiver: usize,
    /// The message.
    pub id: EnvelopeId,
    /// Milliseconds from queueing at the sender to being stored by the receiver.
    pub ms: f64,
}

/// Receiving devices that stay subscribed and time every message against [`SendTimes`].
pub struct Receivers {
    /// When each message was queued (senders note it here).
    pub times: SendTimes,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    delivered: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Receivers {
    /// Subscribes each client and starts counting.
    pub fn start<'a>(clients: impl IntoIterator<Item = &'a Client>) -> Self {
        let mut receivers = Self {
            times: SendTimes::default(),
            arrivals: Arc::default(),
            delivered: Arc::default(),
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        };
        for (index, client) in clients.into_iter().enumerate() {
            receivers.tasks.spawn(receive(
                index,
                client.clone(),
                receivers.times.clone(),
                receivers.arrivals.clone(),
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

    /// How many timed messages arrived so far (over all receivers).
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Stops the receivers; returns how many messages arrived and their latencies.
    pub async fn finish(self) -> anyhow::Result<(usize, Percentiles)> {
        let arrivals = self.finish_arrivals().await?;
        let latencies = arrivals.iter().map(|arrival| arrival.ms).collect();
        Ok((arrivals.len(), Percentiles::of(latencies)))
    }

    /// Stops the receivers; returns every timed arrival, by receiver and message.
    pub async fn finish_arrivals(mut self) -> anyhow::Result<Vec<Arrival>> {
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            joined??;
        }
        Ok(std::mem::take(
            &mut *self.arrivals.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// Stays subscribed, timing every message that arrives at receiver `index`, until `stop`.
async fn receive(
    index: usize,
    client: Client,
    times: SendTimes,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
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
            arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arrival {
                    receiver: index,
                    id: message.id,
                    ms,
                });
            delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
    session.close().await;
    Ok(())
}
