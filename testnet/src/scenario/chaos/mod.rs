//! `scenario chaos`: users send 1:1 and group messages on a schedule while relay processes
//! are SIGKILLed and restarted, relay links are cut and healed, and users drop offline; at
//! the end every accepted message must have reached every intended device once, in order.

mod faults;
mod user;

pub(crate) use user::{Planned, live};

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::Serialize;
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use self::faults::Fault;
use super::{
    tally::{self, GroupMembers},
    users::{self, name},
};
use crate::{
    cluster::Cluster,
    report::{Outcome, Report},
};

/// How long the scenario waits, after the last fault, for everything to arrive.
const QUIESCENCE_TIMEOUT: Duration = Duration::from_secs(180);

/// Share of the messages that go to a group the sender is in.
const GROUP_SHARE: f64 = 0.2;

/// Most members of one workload group.
const GROUP_SIZE: usize = 8;

/// Size and violence of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 3)]
    pub relays: usize,
    /// Users, spread round-robin over the relays (one group per ten users).
    #[arg(long, default_value_t = 12)]
    pub users: usize,
    /// Messages in total, a fifth of them to groups.
    #[arg(long, default_value_t = 600)]
    pub messages: usize,
    /// Messages per second over the whole network while the faults happen (the run lasts
    /// messages / rate).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Mean seconds between relay kills (0: no kills).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = seconds)]
    pub kill_every: Duration,
    /// Also cut and heal links between relays.
    #[arg(long)]
    pub partition: bool,
    /// Seed of the workload and the faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Parses `--kill-every`: zero or more seconds, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|error| format!("{error}"))?;
    if seconds >= 0.0 && seconds.is_finite() {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err("must be zero or more seconds".into())
    }
}

/// The federation report plus the chaos that was played.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// The common counts (delivered and lost count deliveries: one per intended device).
    #[serde(flatten)]
    pub report: Report,
    /// Relays killed with SIGKILL (and restarted).
    pub kills: usize,
    /// Relay links cut (and healed).
    pub partitions: usize,
    /// Times a user went offline (and came back).
    pub offline_episodes: usize,
    /// Groups in the workload.
    pub groups: usize,
    /// Messages sent to groups.
    pub group_messages: usize,
    /// Seconds from the last fault until everything had arrived.
    pub settle_s: f64,
}

impl Outcome for ChaosReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        self.report.print(false)?;
        println!(
            "  chaos: {} relay kills, {} partitions, {} offline episodes; {} groups got {} messages; settled {:.1} s after the last fault",
            self.kills,
            self.partitions,
            self.offline_episodes,
            self.groups,
            self.group_messages,
            self.settle_s
        );
        println!("  {}", if self.report.passed() { "OK" } else { "FAILED" });
        Ok(())
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.report.passed())
            .then_some("the chaos scenario found lost, duplicated or reordered messages")
    }
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<ChaosReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(params.users >= 2, "at least two users");
    ensure!(params.rate > 0.0, "the rate must be positive");
    let started = Instant::now();
    let mut cluster = Cluster::start(work, params.relays).await?;
    let clients = users::register_all(&work.join("users"), params.users, &cluster).await?;
    users::introduce_all(&clients)?;
    let mut rng = StdRng::seed_from_u64(params.seed);
    let groups = create_groups(&clients, &mut rng).await?;
    let (plans, group_messages) = workload(&params, &groups, &mut rng);

    let horizon = Duration::from_secs_f64(params.messages as f64 / params.rate);
    let events = faults::schedule(&faults::Plan {
        relays: params.relays,
        users: params.users,
        kill_every: params.kill_every,
        partition: params.partition,
        horizon,
        seed: params.seed,
    });
    let stop = CancellationToken::new();
    let start = tokio::time::Instant::now();
    let mut online = Vec::new();
    let mut lives = JoinSet::new();
    for (client, plan) in clients.iter().zip(plans) {
        let (flag, watcher) = watch::channel(true);
        online.push(flag);
        lives.spawn(user::live(
            client.clone(),
            plan,
            start,
            watcher,
            stop.clone(),
        ));
    }
    let played = faults::play(&mut cluster, &online, &events, start).await;
    let calm = Instant::now();
    let tally = match &played {
        Ok(_) => {
            tally::settle(
                &clients,
                &groups,
                params.messages,
                calm + QUIESCENCE_TIMEOUT,
            )
            .await
        }
        Err(_) => Ok(tally::Tally::default()),
    };
    stop.cancel();
    while let Some(joined) = lives.join_next().await {
        joined??;
    }
    let (played, tally) = (played?, tally?);
    cluster.stop().await?;
    Ok(ChaosReport {
        report: tally.report(tally::Run {
            scenario: "chaos",
            relays: params.relays,
            users: params.users,
            sent: params.messages,
            started,
            offline_users: count_away(&events),
            seed: params.seed,
        }),
        kills: played.kills,
        partitions: played.partitions,
        offline_episodes: played.offline_episodes,
        groups: groups.len(),
        group_messages,
        settle_s: calm.elapsed().as_secs_f64(),
    })
}

/// One group per ten users (at least one), of up to [`GROUP_SIZE`] random members; the
/// first member creates it and every member has it before the run starts.
async fn create_groups(
    clients: &[tidings_client::Client],
    rng: &mut StdRng,
) -> anyhow::Result<Vec<GroupMembers>> {
    let mut groups = Vec::new();
    for number in 0..(clients.len() / 10).max(1) {
        let mut members: Vec<usize> = (0..clients.len()).collect();
        members.shuffle(rng);
        members.truncate(GROUP_SIZE.min(clients.len()));
        let names: Vec<String> = members[1..].iter().map(|m| name(*m)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut creator = users::connect(&clients[members[0]]).await;
        let id = creator.create_group(&group_name(number), &names).await?;
        creator.close().await;
        for member in &members[1..] {
            users::wait_for_group(&clients[*member], id).await?;
        }
        groups.push(GroupMembers { id, members });
    }
    Ok(groups)
}

fn group_name(number: usize) -> String {
    format!("g{number}")
}

/// Per user, what to send and when: messages are spread evenly over the run at `rate`, a
/// [`GROUP_SHARE`] of them to one of the sender's groups. Texts carry a counter per sender
/// and conversation. Also returns how many went to groups.
fn workload(
    params: &Params,
    groups: &[GroupMembers],
    rng: &mut StdRng,
) -> (Vec<Vec<Planned>>, usize) {
    let mut plans = vec![Vec::new(); params.users];
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut group_messages = 0;
    for index in 0..params.messages {
        let sender = rng.random_range(0..params.users);
        let mine: Vec<usize> = (0..groups.len())
            .filter(|g| groups[*g].members.contains(&sender))
            .collect();
        let (target, label) = if !mine.is_empty() && rng.random_bool(GROUP_SHARE) {
            let number = mine[rng.random_range(0..mine.len())];
            group_messages += 1;
            (
                group_name(number),
                format!("{}:{sender}", group_name(number)),
            )
        } else {
            let mut recipient = rng.random_range(0..params.users - 1);
            if recipient >= sender {
                recipient += 1;
            }
            (name(recipient), format!("{sender}>{recipient}"))
        };
        let counter = counters.entry(label.clone()).or_default();
        *counter += 1;
        plans[sender].push(Planned {
            at: Duration::from_secs_f64(index as f64 / params.rate),
            target,
            text: format!("{label}#{counter}"),
        });
    }
    (plans, group_messages)
}

/// Users that went offline at least once.
fn count_away(events: &[(Duration, Fault)]) -> usize {
    let mut users: Vec<usize> = events
        .iter()
        .filter_map(|(_, fault)| match fault {
            Fault::Away(user) => Some(*user),
            _ => None,
        })
        .collect();
    users.sort_unstable();
    users.dedup();
    users.len()
}
