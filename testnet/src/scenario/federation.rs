//! `scenario federation`: users spread over relay processes send to random others, some of
//! whom are offline for a while; every accepted message must arrive once, in order.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    tally,
    users::{self, name},
};
use crate::{cluster::Cluster, report::Report};

/// How long the scenario waits for the last messages to arrive.
const QUIESCENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 3)]
    pub relays: usize,
    /// Users, spread round-robin over the relays.
    #[arg(long, default_value_t = 12)]
    pub users: usize,
    /// Messages in total, between random pairs.
    #[arg(long, default_value_t = 300)]
    pub messages: usize,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<Report> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(params.users >= 2, "at least two users");
    let started = Instant::now();
    let cluster = Cluster::start(work, params.relays).await?;
    let clients = users::register_all(&work.join("users"), params.users, &cluster).await?;
    users::introduce_all(&clients)?;

    // A quarter of the users are offline while everyone sends, and come back afterwards.
    let offline: Vec<bool> = (0..params.users).map(|index| index % 4 == 3).collect();
    let stop = CancellationToken::new();
    let mut online = Vec::new();
    let mut receivers = JoinSet::new();
    for (client, away) in clients.iter().zip(&offline) {
        let (flag, watcher) = watch::channel(!away);
        online.push(flag);
        receivers.spawn(users::receive(client.clone(), watcher, stop.clone()));
    }

    let mut senders = JoinSet::new();
    for (sender, list) in workload(&params).into_iter().enumerate() {
        let list = list
            .into_iter()
            .map(|(to, text)| (name(to), text))
            .collect();
        senders.spawn(users::send(clients[sender].clone(), list));
    }
    while senders.join_next().await.is_some() {}
    for flag in &online {
        flag.send_replace(true);
    }

    let deadline = Instant::now() + QUIESCENCE_TIMEOUT;
    let tally = tally::settle(&clients, &[], params.messages, deadline).await?;
    stop.cancel();
    while receivers.join_next().await.is_some() {}
    cluster.stop().await?;
    Ok(tally.report(tally::Run {
        scenario: "federation",
        relays: params.relays,
        users: params.users,
        sent: params.messages,
        started,
        offline_users: offline.iter().filter(|away| **away).count(),
        seed: params.seed,
    }))
}

/// Per sender, the (recipient, text) list to send in order. Texts carry the pair's counter.
fn workload(params: &Params) -> Vec<Vec<(usize, String)>> {
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut lists = vec![Vec::new(); params.users];
    let mut counters: HashMap<(usize, usize), u64> = HashMap::new();
    for _ in 0..params.messages {
        let sender = rng.random_range(0..params.users);
        let mut recipient = rng.random_range(0..params.users - 1);
        if recipient >= sender {
            recipient += 1;
        }
        let counter = counters.entry((sender, recipient)).or_default();
        *counter += 1;
        lists[sender].push((recipient, format!("{sender}>{recipient}#{counter}")));
    }
    lists
}
