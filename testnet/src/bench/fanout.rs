//! `bench fanout`: one group over several relays, one member sending paced messages: how long until every online member has each one, and how many relay-to-relay batches that took.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde::Serialize;
use tidings_client::Client;
use tidings_protocol::{EnvelopeId, GroupId};

use super::{Arrival, Receivers, send_round_to};
use crate::{
    cluster::Cluster,
    report::{Outcome, Percentiles},
    scenario::users::{self, name},
};

/// The group's name in every member's client.
const GROUP: &str = "fanout";
/// How long members may take to learn of the group, and to get the first message (which
/// carries the sender's group session key to each of them).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the bench waits for the last messages after the sender stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes; member i is homed on relay i % relays.
    #[arg(long, default_value_t = 3)]
    pub relays: usize,
    /// Group members, the sender (member 0) included.
    #[arg(long, default_value_t = 64)]
    pub members: usize,
    /// Timed messages the sender sends to the group.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Milliseconds between two messages.
    #[arg(long, default_value_t = 250)]
    pub interval_ms: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Bench name.
    pub bench: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Group members, the sender included.
    pub members: usize,
    /// Members online (subscribed) while the messages went out: all but the sender.
    pub online_members: usize,
    /// Timed messages the sender's relay accepted.
    pub messages: usize,
    /// Pause between two messages, milliseconds.
    pub interval_ms: u64,
    /// Per message: from queueing at the sender until the last online member stored it.
    pub all_members_ms: Percentiles,
    /// Per member and message: from queueing at the sender until that member stored it.
    pub member_ms: Percentiles,
    /// The first, untimed message (it also carries the sender's group session key to every
    /// member): from queueing until every online member stored it.
    pub first_message_ms: f64,
    /// Deliveries expected: messages times online members.
    pub deliveries_expected: usize,
    /// Deliveries seen (a member storing a message).
    pub deliveries: usize,
    /// Expected deliveries that never came.
    pub missed: usize,
    /// Deliveries seen more than once.
    pub duplicates: usize,
    /// Relay-to-relay batches that carried the timed messages (summed over the relays'
    /// `tidings_forward_batches_total{kind="Group"}`).
    pub forward_batches: u64,
    /// `forward_batches` per message (relays holding members besides the sender's: at most
    /// relays - 1).
    pub forward_batches_per_message: f64,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
}

impl FanoutReport {
    /// Whether every online member got every message exactly once.
    pub fn passed(&self) -> bool {
        self.missed == 0 && self.duplicates == 0 && self.deliveries == self.deliveries_expected
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "fanout: a group of {} members over {} relays; one member sends {} messages, one every {} ms",
            self.members, self.relays, self.messages, self.interval_ms
        );
        println!(
            "  until all {} online members have it: {}",
            self.online_members, self.all_members_ms
        );
        println!("  each member's arrival: {}", self.member_ms);
        println!(
            "  first message (with the group key for everyone): {:.1} ms",
            self.first_message_ms
        );
        println!(
            "  {} of {} deliveries; {} missed, {} duplicates",
            self.deliveries, self.deliveries_expected, self.missed, self.duplicates
        );
        println!(
            "  {} relay-to-relay batches for {} messages ({:.2} per message)",
            self.forward_batches, self.messages, self.forward_batches_per_message
        );
        println!("  wall {:.1} s", self.wall_s);
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

/// Runs the bench in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<FanoutReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!((2..=4096).contains(&params.members), "2 to 4,096 members");
    ensure!(
        (1..=10_000).contains(&params.messages),
        "1 to 10,000 messages"
    );
    ensure!(
        params.interval_ms <= 60_000,
        "at most 60 s between messages"
    );
    let started = Instant::now();
    let cluster = Cluster::start(work, params.relays).await?;
    let clients = users::register_all(&work.join("members"), params.members, &cluster).await?;
    let online = params.members - 1;
    // Subscribed from the start: members learn of the group through their sessions.
    let receivers = Receivers::start(clients.iter().skip(1));
    let group = create_group(&clients).await?;
    wait_until_known(&clients[1..], group).await?;

    let sender = &clients[0];
    let mut session = users::connect(sender).await;
    let first = Instant::now();
    let warm_up = send_round_to(
        sender,
        &mut session,
        GROUP,
        vec!["warm-up".into()],
        &receivers.times,
    )
    .await?;
    receivers.wait_for(online, SETUP_TIMEOUT).await;
    ensure!(
        receivers.delivered() >= online,
        "only {} of {online} members got the first message within {SETUP_TIMEOUT:?}",
        receivers.delivered()
    );
    let first_message_ms = first.elapsed().as_secs_f64() * 1000.0;

    let batches_before = cluster.group_batches().await?;
    let mut ticks = tokio::time::interval(Duration::from_millis(params.interval_ms.max(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut timed: Vec<EnvelopeId> = Vec::with_capacity(params.messages);
    for n in 0..params.messages {
        ticks.tick().await;
        let text = vec![format!("fanout {n}")];
        timed.extend(send_round_to(sender, &mut session, GROUP, text, &receivers.times).await?);
    }
    session.close().await;
    let expected = timed.len() * online;
    receivers
        .wait_for(expected + warm_up.len() * online, DRAIN_TIMEOUT)
        .await;
    let forward_batches = cluster.group_batches().await? - batches_before;
    let arrivals = receivers.finish_arrivals().await?;
    cluster.stop().await?;

    let tally = Tally::of(&timed, online, &arrivals);
    Ok(FanoutReport {
        bench: "fanout",
        relays: params.relays,
        members: params.members,
        online_members: online,
        messages: timed.len(),
        interval_ms: params.interval_ms,
        all_members_ms: Percentiles::of(tally.all_members),
        member_ms: Percentiles::of(tally.member),
        first_message_ms,
        deliveries_expected: expected,
        deliveries: tally.deliveries,
        missed: expected.saturating_sub(tally.deliveries),
        duplicates: tally.duplicates,
        forward_batches,
        forward_batches_per_message: forward_batches as f64 / timed.len().max(1) as f64,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Member 0 adds the others as contacts and creates the group of everyone, as its admin.
async fn create_group(clients: &[Client]) -> anyhow::Result<GroupId> {
    let creator = &clients[0];
    let mut names = Vec::with_capacity(clients.len());
    for (index, client) in clients.iter().enumerate().skip(1) {
        creator.add_contact(&name(index), &client.card(None)?)?;
        names.push(name(index));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut session = users::connect(creator).await;
    let group = session.create_group(GROUP, &names).await?;
    session.close().await;
    Ok(group)
}

/// Waits until every one of `members` (subscribed meanwhile) has stored the group.
async fn wait_until_known(members: &[Client], group: GroupId) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    for member in members {
        while member.store().group(&group)?.is_none() {
            ensure!(
                Instant::now() < deadline,
                "a member never learned of the group"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// The arrivals of the timed messages, per message and per member.
#[derive(Default)]
struct Tally {
    /// Per message every online member got: when the last one got it.
    all_members: Vec<f64>,
    /// Every first arrival of a timed message at a member.
    member: Vec<f64>,
    deliveries: usize,
    duplicates: usize,
}

impl Tally {
    fn of(timed: &[EnvelopeId], online: usize, arrivals: &[Arrival]) -> Tally {
        let timed: HashSet<&EnvelopeId> = timed.iter().collect();
        let mut tally = Tally::default();
        let mut seen: HashSet<(usize, EnvelopeId)> = HashSet::new();
        let mut per_message: HashMap<EnvelopeId, (usize, f64)> = HashMap::new();
        for arrival in arrivals
            .iter()
            .filter(|arrival| timed.contains(&arrival.id))
        {
            if !seen.insert((arrival.receiver, arrival.id)) {
                tally.duplicates += 1;
                continue;
            }
            tally.deliveries += 1;
            tally.member.push(arrival.ms);
            let (count, last) = per_message.entry(arrival.id).or_default();
            *count += 1;
            *last = last.max(arrival.ms);
        }
        tally.all_members = per_message
            .into_values()
            .filter(|(count, _)| *count == online)
            .map(|(_, last)| last)
            .collect();
        tally
    }
}

impl Outcome for FanoutReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some("a member missed a group message or got one twice")
    }
}
