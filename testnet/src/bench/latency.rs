//! `bench latency`: a fixed message rate across two relays (senders homed on one, their
//! receivers on the other), so the figures are latency at that load, not under saturation.

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
/// How often each sender hands its share of the rate to its relay.
const TICK: Duration = Duration::from_millis(20);

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Messages per second, over all senders.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Sender/receiver pairs sharing the rate.
    #[arg(long, default_value_t = 8)]
    pub pairs: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// Bench name.
    pub bench: &'static str,
    /// Asked rate, messages per second.
    pub rate: u32,
    /// Rate the senders reached.
    pub achieved_rate: f64,
    /// Sender/receiver pairs.
    pub pairs: usize,
    /// Seconds of sending.
    pub seconds: u64,
    /// Messages the senders' relay accepted.
    pub sent: usize,
    /// Of those, messages the receivers' clients stored.
    pub delivered: usize,
    /// Accepted messages that never arrived.
    pub lost: usize,
    /// From queueing at the sender to being stored by the receiver, across the two relays.
    pub latency_ms: Percentiles,
}

impl LatencyReport {
    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "latency: {} msg/s asked ({:.0} reached) across 2 relays, {} pairs, {} s: {} sent, {} delivered, {} lost",
            self.rate,
            self.achieved_rate,
            self.pairs,
            self.seconds,
            self.sent,
            self.delivered,
            self.lost
        );
        println!("  latency {}", self.latency_ms);
        Ok(())
    }
}

/// Runs the bench in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<LatencyReport> {
    ensure!(params.pairs >= 1, "at least one pair");
    ensure!((1..=100_000).contains(&params.rate), "1 to 100,000 msg/s");
    ensure!((1..=600).contains(&params.seconds), "1 to 600 seconds");
    let cluster = Cluster::start_unthrottled(work, 2).await?;
    // User i is homed on relay i % 2: senders (even) on the first, receivers on the second.
    let clients = users::register_all(&work.join("users"), params.pairs * 2, &cluster).await?;
    introduce_pairs(&clients).await?;

    let receivers = Receivers::start(clients.iter().skip(1).step_by(2));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(params.seconds);
    let share = f64::from(params.rate) / params.pairs as f64;
    let mut senders = JoinSet::new();
    for sender in clients.iter().step_by(2) {
        senders.spawn(send_paced(
            sender.clone(),
            share,
            deadline,
            receivers.times.clone(),
        ));
    }
    let mut sent = 0;
    while let Some(joined) = senders.join_next().await {
        sent += joined??;
    }
    let achieved_rate = sent as f64 / started.elapsed().as_secs_f64();
    receivers.wait_for(sent, DRAIN_TIMEOUT).await;
    let (delivered, latency_ms) = receivers.finish().await?;
    cluster.stop().await?;
    Ok(LatencyReport {
        bench: "latency",
        rate: params.rate,
        achieved_rate,
        pairs: params.pairs,
        seconds: params.seconds,
        sent,
        delivered,
        lost: sent.saturating_sub(delivered),
        latency_ms,
    })
}

/// Sends `rate` messages per second until `deadline`: each tick, what is due by then.
async fn send_paced(
    client: Client,
    rate: f64,
    deadline: Instant,
    times: SendTimes,
) -> anyhow::Result<usize> {
    let mut session = users::connect(&client).await;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0;
    while Instant::now() < deadline {
        ticks.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as usize;
        if due <= sent {
            continue;
        }
        let texts = (sent..due).map(|n| format!("paced {n}")).collect();
        sent += send_round(&client, &mut session, texts, &times).await?;
    }
    session.close().await;
    Ok(sent)
}

impl Outcome for LatencyReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }
}
