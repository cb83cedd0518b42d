//! `bench drain`: N messages wait at the relay for an offline user, who then connects:
//! how fast the backlog reaches the device's store, and that none is missing or doubled.

use std::{
    collections::HashSet,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde::Serialize;
use tidings_client::{Direction, Event};
use tidings_protocol::EnvelopeId;

use super::{PEER, introduce_pairs};
use crate::{cluster::Cluster, report::Outcome, scenario::users};

/// How long the device may take to drain the backlog.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Messages queued per local commit while filling the backlog.
const FILL_CHUNK: usize = 256;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Messages waiting for the offline user.
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    /// Bench name.
    pub bench: &'static str,
    /// Messages the relay accepted for the offline user.
    pub messages: usize,
    /// Of those, messages found in the user's store afterwards.
    pub drained: usize,
    /// Accepted messages missing from the store.
    pub lost: usize,
    /// Messages stored more than once.
    pub duplicates: usize,
    /// From connecting to having stored the last one.
    pub drain_s: f64,
    /// Messages stored per second while draining.
    pub msgs_per_s: f64,
}

impl DrainReport {
    /// Whether every message arrived exactly once.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicates == 0
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "drain: {} messages waiting; {} stored in {:.2} s ({:.0} msg/s); {} lost, {} duplicates",
            self.messages, self.drained, self.drain_s, self.msgs_per_s, self.lost, self.duplicates
        );
        Ok(())
    }
}

/// Runs the bench in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<DrainReport> {
    ensure!(
        (1..=1_000_000).contains(&params.messages),
        "1 to 1,000,000 messages"
    );
    let cluster = Cluster::start_unthrottled(work, 1).await?;
    let clients = users::register_all(&work.join("users"), 2, &cluster).await?;
    introduce_pairs(&clients).await?;
    let (sender, receiver) = (&clients[0], &clients[1]);

    let mut sent: HashSet<EnvelopeId> = HashSet::with_capacity(params.messages);
    let mut session = users::connect(sender).await;
    while sent.len() < params.messages {
        let count = FILL_CHUNK.min(params.messages - sent.len());
        let texts = (0..count)
            .map(|n| format!("backlog {}", sent.len() + n))
            .collect();
        let queued = sender.queue_texts(PEER, texts).await?;
        let report = session.flush().await?;
        ensure!(
            report.sent.len() == queued.len(),
            "the relay took {} of {}",
            report.sent.len(),
            queued.len()
        );
        sent.extend(queued.iter().map(|record| record.id));
    }
    session.close().await;

    let started = Instant::now();
    let mut session = users::connect(receiver).await;
    session.subscribe().await?;
    let mut arrived = 0;
    while arrived < sent.len() && started.elapsed() < DRAIN_TIMEOUT {
        match tokio::time::timeout(Duration::from_secs(5), session.next_event()).await {
            Ok(event) => {
                if let Event::Message(message) = event?
                    && sent.contains(&message.id)
                {
                    arrived += 1;
                }
            }
            Err(_) => break,
        }
    }
    let drain_s = started.elapsed().as_secs_f64();
    session.close().await;
    cluster.stop().await?;

    let mut seen = HashSet::with_capacity(sent.len());
    let mut duplicates = 0;
    for record in receiver.history(PEER)? {
        if record.direction == Direction::Incoming
            && sent.contains(&record.id)
            && !seen.insert(record.id)
        {
            duplicates += 1;
        }
    }
    Ok(DrainReport {
        bench: "drain",
        messages: sent.len(),
        drained: seen.len(),
        lost: sent.len() - seen.len(),
        duplicates,
        drain_s,
        msgs_per_s: seen.len() as f64 / drain_s,
    })
}

impl Outcome for DrainReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some("the drain lost or doubled messages")
    }
}
