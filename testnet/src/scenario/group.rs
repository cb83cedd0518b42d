//! `scenario group`: one group spread over relay processes; random members send, a quarter
//! of the members are offline meanwhile; every member must get every message once, in order,
//! and each message must cross to each other relay at most once.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    tally::{self, GroupMembers},
    users::{self, name},
};
use crate::{
    cluster::Cluster,
    report::{Outcome, Report},
};

/// How long the scenario waits for the last messages to arrive.
const QUIESCENCE_TIMEOUT: Duration = Duration::from_secs(120);

/// The group's name in every member's client.
const GROUP: &str = "scenario";

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 3)]
    pub relays: usize,
    /// Group members, spread round-robin over the relays.
    #[arg(long, default_value_t = 12)]
    pub members: usize,
    /// Messages in total, from random members.
    #[arg(long, default_value_t = 60)]
    pub messages: usize,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The federation report plus what is particular to groups.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// The common counts.
    #[serde(flatten)]
    pub report: Report,
    /// Members of the group.
    pub members: usize,
    /// Relay-to-relay batches that carried the group's messages.
    pub forward_batches: u64,
    /// `forward_batches` per message (must not exceed relays - 1).
    pub forward_batches_per_message: f64,
}

impl GroupReport {
    /// Whether every member got every message once, in order, within the batch budget.
    pub fn passed(&self) -> bool {
        self.report.passed()
            && self.forward_batches_per_message <= (self.report.relays.saturating_sub(1)) as f64
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        self.report.print(false)?;
        println!(
            "  group of {} members: {} relay-to-relay batches for {} messages ({:.2} per message; at most {} allowed)",
            self.members,
            self.forward_batches,
            self.report.sent,
            self.forward_batches_per_message,
            self.report.relays.saturating_sub(1)
        );
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<GroupReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(params.members >= 2, "at least two members");
    let started = Instant::now();
    let cluster = Cluster::start(work, params.relays).await?;
    let clients = users::register_all(&work.join("members"), params.members, &cluster).await?;
    let cards = clients
        .iter()
        .map(|client| client.card(None))
        .collect::<Result<Vec<_>, _>>()?;
    // The creator knows everyone; members need no contacts to talk in the group.
    for (other, card) in cards.iter().enumerate().skip(1) {
        clients[0].add_contact(&name(other), card)?;
    }
    let everyone: Vec<String> = (1..params.members).map(name).collect();
    let everyone: Vec<&str> = everyone.iter().map(String::as_str).collect();
    let mut creator = users::connect(&clients[0]).await;
    let group = creator.create_group(GROUP, &everyone).await?;
    creator.close().await;
    for client in &clients[1..] {
        users::wait_for_group(client, group).await?;
    }

    let offline: Vec<bool> = (0..params.members).map(|index| index % 4 == 3).collect();
    let stop = CancellationToken::new();
    let mut flags = Vec::new();
    let mut receivers = JoinSet::new();
    for (client, away) in clients.iter().zip(&offline) {
        let (flag, watcher) = watch::channel(!away);
        flags.push(flag);
        receivers.spawn(users::receive(client.clone(), watcher, stop.clone()));
    }
    let batches_before = cluster.group_batches().await?;
    let mut senders = JoinSet::new();
    for (sender, list) in workload(&params).into_iter().enumerate() {
        if !list.is_empty() {
            senders.spawn(users::send(clients[sender].clone(), list));
        }
    }
    while senders.join_next().await.is_some() {}
    for flag in &flags {
        flag.send_replace(true);
    }
    let deadline = Instant::now() + QUIESCENCE_TIMEOUT;
    let members = [GroupMembers {
        id: group,
        members: (0..params.members).collect(),
    }];
    let tally = tally::settle(&clients, &members, params.messages, deadline).await?;
    // Retries and late batches have settled by now.
    let forward_batches = cluster.group_batches().await? - batches_before;
    stop.cancel();
    while receivers.join_next().await.is_some() {}
    cluster.stop().await?;
    let messages = params.messages.max(1);
    Ok(GroupReport {
        report: tally.report(tally::Run {
            scenario: "group",
            relays: params.relays,
            users: params.members,
            sent: params.messages,
            started,
            offline_users: offline.iter().filter(|away| **away).count(),
            seed: params.seed,
        }),
        members: params.members,
        forward_batches,
        forward_batches_per_message: forward_batches as f64 / messages as f64,
    })
}

/// Per member, the texts to send to the group in order; texts carry the sender's counter.
fn workload(params: &Params) -> Vec<Vec<(String, String)>> {
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut lists = vec![Vec::new(); params.members];
    let mut counters = vec![0u64; params.members];
    for _ in 0..params.messages {
        let sender = rng.random_range(0..params.members);
        counters[sender] += 1;
        lists[sender].push((GROUP.to_string(), format!("{sender}#{}", counters[sender])));
    }
    lists
}

impl Outcome for GroupReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some(
            "the group scenario found lost, duplicated or reordered messages, or too many batches",
        )
    }
}
