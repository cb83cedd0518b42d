//! `bench throughput`: one relay, P sender/receiver pairs; each sender queues W messages,
//! sends them, waits for the relay's answer and goes again, for D seconds. Reports what the
//! receivers' clients stored per second and how long each message took to get there.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde::Serialize;
use tidings_client::Client;
use tokio::task::JoinSet;

use super::{Receivers, SendTimes, introduce_pairs, send_round};
use crate::{
    cluster::Cluster,
    report::{Outcome, Percentiles},
    scenario::users,
};

/// How long the bench waits for the last messages after the senders stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 8)]
    pub pairs: usize,
    /// Messages each sender has in flight (queued, sent, awaiting the relay's answer).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// Bench name.
    pub bench: &'static str,
    /// Sender/receiver pairs.
    pub pairs: usize,
    /// Messages in flight per sender.
    pub window: usize,
    /// Seconds of sending.
    pub seconds: u64,
    /// Messages the relay accepted.
    pub sent: usize,
    /// Of those, messages the receivers' clients stored.
    pub delivered: usize,
    /// Accepted messages that never arrived.
    pub lost: usize,
    /// Delivered messages per second, from the first send to the last arrival.
    pub msgs_per_s: f64,
    /// From queueing at the sender to being stored by the receiver.
    pub latency_ms: Percentiles,
}

impl ThroughputReport {
    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "throughput: {} pairs, window {}, {} s: {} sent, {} delivered, {} lost",
            self.pairs, self.window, self.seconds, self.sent, self.delivered, self.lost
        );
        println!("  {:.0} msg/s delivered", self.msgs_per_s);
        println!("  latency {}", self.latency_ms);
        Ok(())
    }
}

/// Runs the bench in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<ThroughputReport> {
    ensure!(params.pairs >= 1, "at least one pair");
    ensure!(
        (1..=4096).contains(&params.window),
        "a window of 1 to 4096 messages"
    );
    ensure!((1..=600).contains(&params.seconds), "1 to 600 seconds");
    let cluster = Cluster::start_unthrottled(work, 1).await?;
    let clients = users::register_all(&work.join("users"), params.pairs * 2, &cluster).await?;
    introduce_pairs(&clients).await?;

    let receivers = Receivers::start(clients.iter().skip(1).step_by(2));
    let times = receivers.times.clone();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(params.seconds);
    let mut senders = JoinSet::new();
    for sender in clients.iter().step_by(2) {
        senders.spawn(send(sender.clone(), params.window, deadline, times.clone()));
    }
    let mut sent = 0;
    while let Some(joined) = senders.join_next().await {
        sent += joined??;
    }
    receivers.wait_for(sent, DRAIN_TIMEOUT).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (delivered, latency_ms) = receivers.finish().await?;
    cluster.stop().await?;
    Ok(ThroughputReport {
        bench: "throughput",
        pairs: params.pairs,
        window: params.window,
        seconds: params.seconds,
        sent,
        delivered,
        lost: sent.saturating_sub(delivered),
        msgs_per_s: delivered as f64 / elapsed,
        latency_ms,
    })
}

/// Queues a window of messages in one local commit, sends them, and goes again until
/// `deadline`; returns how many the relay accepted.
async fn send(
    client: Client,
    window: usize,
    deadline: Instant,
    times: SendTimes,
) -> anyhow::Result<usize> {
    let mut session = users::connect(&client).await;
    let mut sent = 0;
    let mut round = 0usize;
    while Instant::now() < deadline {
        let texts = (0..window)
            .map(|n| format!("round {round} message {n}"))
            .collect();
        sent += send_round(&client, &mut session, texts, &times).await?;
        round += 1;
    }
    session.close().await;
    Ok(sent)
}

impl Outcome for ThroughputReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }
}
