//! `scenario adversary`: honest users chat 1:1 and in a group across relay processes while a
//! malicious relay (an in-process libp2p peer) and malicious users (raw streams, misused
//! keys) run every attack of issue 12 against them; each attack is judged by what the honest
//! parties observe.
// The attacks forge with the users' raw keys on purpose.
#![allow(clippy::disallowed_methods)]

mod claims;
mod craft;
mod devices;
mod dht;
mod dialer;
mod groups;
mod impersonation;
mod lockout;
mod lower;
mod presence;
mod raw;
mod rogue;
mod storage;
mod world;

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde::Serialize;
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use self::world::World;
use super::{
    chaos,
    tally::{self, GroupMembers},
};
use crate::report::{Outcome, Percentiles};

/// The honest group's name in every member's client.
pub const GROUP: &str = "main";

/// How long the honest chat is spread over (the attacks run meanwhile).
const CHAT_SPAN: Duration = Duration::from_secs(20);

/// How long the scenario waits, after the chat and the attacks, for honest messages to
/// arrive.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The relays' heartbeat timeout in this scenario (an idle, unregistered session is judged
/// against it too).
pub const HEARTBEAT_SECS: u64 = 5;

/// The relays' outbox bound in this scenario, kept small so filling it takes seconds; the
/// attack scales to the default (1,000,000) with more messages.
pub const OUTBOX_MAX: u64 = 10_000;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (at least 3: attacks need a victim, a bystander and a third; the
    /// first starts the DHT, the others join it).
    #[arg(long, default_value_t = 3)]
    pub relays: usize,
    /// Honest users (at least 3), spread round-robin over the relays.
    #[arg(long, default_value_t = 6)]
    pub users: usize,
    /// Honest messages in all, spread over the attacks, a fifth of them to the group.
    #[arg(long, default_value_t = 60)]
    pub messages: usize,
    /// Seed of the honest chat.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How one attack went, judged from what honest parties observed.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The attack worked: an honest party was fooled, locked out, refused or over a bound.
    pub succeeded: bool,
    /// The attack ran far enough to be judged (false: it could not be set up).
    pub judged: bool,
    /// What was done and seen.
    pub detail: String,
    /// How long the attack (with its observation) took, in milliseconds.
    pub took_ms: u64,
}

impl Verdict {
    /// A judged attack.
    pub fn new(succeeded: bool, detail: impl Into<String>) -> Self {
        Self {
            succeeded,
            judged: true,
            detail: detail.into(),
            took_ms: 0,
        }
    }

    /// An attack that could not be carried out far enough to judge.
    pub fn unjudged(error: &anyhow::Error) -> Self {
        Self {
            succeeded: false,
            judged: false,
            detail: format!("could not be judged: {error:#}"),
            took_ms: 0,
        }
    }
}

/// Named verdicts of one attack family.
pub type Findings = Vec<(&'static str, Verdict)>;

/// The findings of `attempt`, or every name unjudged if it failed.
pub(crate) fn findings(names: &[&'static str], attempt: anyhow::Result<Findings>) -> Findings {
    match attempt {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!("attack {names:?} could not be judged: {error:#}");
            names
                .iter()
                .map(|name| (*name, Verdict::unjudged(&error)))
                .collect()
        }
    }
}

/// What the run saw.
#[derive(Debug, Clone, Serialize)]
pub struct AdversaryReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Honest users.
    pub users: usize,
    /// Seed of the honest chat.
    pub seed: u64,
    /// Honest messages handed to senders.
    pub sent: usize,
    /// Of those, accepted by their home relay (✓).
    pub accepted: usize,
    /// Deliveries the honest messages owe (one per intended recipient).
    pub expected_deliveries: usize,
    /// Deliveries found in recipients' histories.
    pub delivered: usize,
    /// Deliveries missing at the end (a message never accepted owes all of its).
    pub honest_lost: usize,
    /// Deliveries stored twice.
    pub duplicates: usize,
    /// Deliveries stored before an earlier message of the same sender and conversation.
    pub out_of_order: usize,
    /// From sending to being stored at the recipient, per delivery.
    pub honest_delayed_ms: Percentiles,
    /// Attack name -> verdict.
    pub attacks: BTreeMap<&'static str, Verdict>,
    /// Attacks that succeeded.
    pub attacks_succeeded: usize,
    /// Attacks that could not be judged.
    pub attacks_unjudged: usize,
    /// Every relay process was still there at the end and stopped gracefully.
    pub relays_stopped_cleanly: bool,
    /// Seconds to start relays, register users, form the group and start the rogue relay.
    pub setup_s: f64,
    /// Seconds the attacks took (the honest chat ran meanwhile).
    pub attacks_s: f64,
    /// Seconds from the end of the chat until honest messages settled (or the timeout).
    pub settle_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

impl AdversaryReport {
    /// Whether every attack was judged and failed, nothing honest was lost, and every relay
    /// survived.
    pub fn passed(&self) -> bool {
        self.attacks_succeeded == 0
            && self.attacks_unjudged == 0
            && self.relays_stopped_cleanly
            && self.honest_lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
    }
}

impl Outcome for AdversaryReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "adversary scenario: {} relays, {} honest users, seed {}, a rogue relay and malicious users",
            self.relays, self.users, self.seed
        );
        println!(
            "  honest: sent {}  accepted {}  deliveries {} of {}  lost {}  duplicates {}  out of order {}",
            self.sent,
            self.accepted,
            self.delivered,
            self.expected_deliveries,
            self.honest_lost,
            self.duplicates,
            self.out_of_order
        );
        println!(
            "  honest delay (send -> stored): {}",
            self.honest_delayed_ms
        );
        for (name, verdict) in &self.attacks {
            let mark = match (verdict.judged, verdict.succeeded) {
                (false, _) => "UNJUDGED ",
                (true, true) => "SUCCEEDED",
                (true, false) => "held     ",
            };
            println!("  {mark} {name}: {}", verdict.detail);
        }
        if !self.relays_stopped_cleanly {
            println!("  a relay did not stop cleanly after the attacks (see its relay.log)");
        }
        println!(
            "  {} attacks succeeded, {} unjudged; set-up {:.1} s, attacks {:.1} s, settling {:.1} s, wall {:.1} s",
            self.attacks_succeeded,
            self.attacks_unjudged,
            self.setup_s,
            self.attacks_s,
            self.settle_s,
            self.wall_s
        );
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed())
            .then_some("an attack succeeded or could not be judged, or honest messages were lost")
    }
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<AdversaryReport> {
    ensure!(params.relays >= 3, "at least three relays");
    ensure!(params.users >= 3, "at least three honest users");
    let started = Instant::now();
    let mut world = world::build(work, params.relays, params.users, |config| {
        // The bounds the attacks are judged by, set where a relay's default is larger than a
        // small run can show.
        config.presence.heartbeat_timeout_secs = HEARTBEAT_SECS;
        config.limits.outbox_max_envelopes = OUTBOX_MAX;
        config.network.stream_idle_secs = HEARTBEAT_SECS;
        config.network.dht_records_per_peer = dht::RECORDS_BOUND as u64;
        config.limits.mailbox_max_bytes = storage::MAILBOX_BOUND as u64;
        config.limits.outbox_max_per_user = OUTBOX_MAX / 5;
    })
    .await?;
    let idle = lower::open_idle_session(&world).await;
    lower::host_rogue_user(&mut world).await?;
    let setup_s = started.elapsed().as_secs_f64();

    let plans = world::plan_chat(params.users, params.messages, CHAT_SPAN, params.seed);
    let expected_deliveries = expected(&plans, params.users);
    let stop = CancellationToken::new();
    let start = tokio::time::Instant::now();
    let mut lives = JoinSet::new();
    let mut online = Vec::new();
    for (client, plan) in world.honest.iter().zip(plans) {
        let (flag, watcher) = watch::channel(true);
        online.push(flag);
        lives.spawn(chaos::live(
            client.clone(),
            plan,
            start,
            watcher,
            stop.clone(),
        ));
    }

    let mut attacks: BTreeMap<&'static str, Verdict> = BTreeMap::new();
    let attacking = Instant::now();
    let first_wave = futures::future::join_all([
        timed(impersonation::run(&world)),
        timed(groups::removed_member_posts(&world)),
        timed(groups::squat(&world)),
        timed(claims::drain(&world)),
        timed(presence::leak(&world)),
        timed(presence::typing_forgery(&world)),
        timed(dht::lookups(&world)),
        timed(dht::records(&world)),
        timed(storage::descriptors(&world)),
        timed(storage::mailbox(&world)),
        timed(lower::dedupe(&world)),
        timed(lower::error_detail(&world)),
        timed(devices::removed(&world)),
        timed(devices::forged_list(&world)),
    ])
    .await;
    attacks.extend(first_wave.into_iter().flatten());
    // The second wave breaks things for good or a while: the group's descriptors, the
    // lockout of one relay, the outbox of another.
    let second_wave = futures::future::join_all([
        timed(groups::takeover(&world)),
        timed(lockout::run(&world)),
        timed(storage::outbox(&world)),
    ])
    .await;
    attacks.extend(second_wave.into_iter().flatten());
    attacks.extend(lower::judge_idle_session(idle).await);
    attacks.extend(lower::store_permissions(&world));
    let attacks_s = attacking.elapsed().as_secs_f64();

    tokio::time::sleep_until(start + CHAT_SPAN).await;
    let settling = Instant::now();
    let groups = [GroupMembers {
        id: world.group,
        members: (0..params.users).collect(),
    }];
    let tally = tally::settle(
        &world.honest,
        &groups,
        params.messages,
        Instant::now() + SETTLE_TIMEOUT,
    )
    .await?;
    let settle_s = settling.elapsed().as_secs_f64();
    stop.cancel();
    while let Some(joined) = lives.join_next().await {
        if let Ok(Err(error)) = joined {
            tracing::warn!(%error, "an honest user stopped");
        }
    }
    let World { cluster, .. } = world;
    let stopped = cluster.into_inner().stop().await;
    if let Err(error) = &stopped {
        tracing::error!("a relay did not stop cleanly after the attacks: {error:#}");
    }

    let attacks_succeeded = attacks.values().filter(|v| v.succeeded).count();
    let attacks_unjudged = attacks.values().filter(|v| !v.judged).count();
    Ok(AdversaryReport {
        scenario: "adversary",
        relays: params.relays,
        users: params.users,
        seed: params.seed,
        sent: params.messages,
        accepted: tally.accepted,
        expected_deliveries,
        delivered: tally.delivered,
        honest_lost: expected_deliveries.saturating_sub(tally.delivered),
        duplicates: tally.duplicates,
        out_of_order: tally.out_of_order,
        honest_delayed_ms: Percentiles::of(tally.latencies),
        attacks,
        attacks_succeeded,
        attacks_unjudged,
        relays_stopped_cleanly: stopped.is_ok(),
        setup_s,
        attacks_s,
        settle_s,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Runs an attack family, noting how long it took in each of its verdicts.
fn timed<'a>(
    attack: impl std::future::Future<Output = Findings> + Send + 'a,
) -> futures::future::BoxFuture<'a, Findings> {
    Box::pin(async move {
        let started = Instant::now();
        let mut found = attack.await;
        let took = started.elapsed().as_millis() as u64;
        for (_, verdict) in &mut found {
            verdict.took_ms = took;
        }
        found
    })
}

/// Deliveries the plans owe: one per 1:1 message, one per other member per group message.
fn expected(plans: &[Vec<chaos::Planned>], users: usize) -> usize {
    plans
        .iter()
        .flatten()
        .map(|planned| {
            if planned.target == GROUP {
                users - 1
            } else {
                1
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_owes_one_delivery_per_direct_message_and_one_per_other_member() {
        let plans = world::plan_chat(4, 40, CHAT_SPAN, 3);
        let group: usize = plans.iter().flatten().filter(|p| p.target == GROUP).count();
        assert_eq!(plans.iter().map(Vec::len).sum::<usize>(), 40);
        assert_eq!(expected(&plans, 4), (40 - group) + group * 3);
        assert!(plans.iter().flatten().all(|p| p.at < CHAT_SPAN));
    }

    #[test]
    fn a_family_that_cannot_run_leaves_each_of_its_verdicts_unjudged() {
        let error = anyhow::anyhow!("no relay answered");
        let found = findings(&["a", "b"], Err(error));
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, verdict)| !verdict.judged));
    }
}
