//! `scenario multidevice`: accounts with several devices (linked by the real link flow)
//! spread over relay processes send 1:1 and group messages from random devices while some
//! devices are offline; one device is removed halfway and must get nothing sent after; a read
//! on one device must show on the account's others.

mod probes;
mod tally;
mod world;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use self::{
    tally::{Plan, Planned, Target},
    world::{Dev, GROUP, World},
};
use super::users::{self, name};
use crate::{
    cluster::Cluster,
    report::{Outcome, Percentiles, Report},
};

/// How long each phase waits for its last messages to arrive.
const QUIESCENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Share of messages a group member's device sends to the group.
const GROUP_SHARE: f64 = 0.3;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 2)]
    pub relays: usize,
    /// Users, homed round-robin on the relays.
    #[arg(long, default_value_t = 6)]
    pub users: usize,
    /// User i has 1 + (i % D) devices: the first makes the account, the others are linked.
    #[arg(long, default_value_t = 3)]
    pub devices_per_user: usize,
    /// Messages in total, 1:1 and to the group, from random devices (half before the
    /// removal of a device, half after).
    #[arg(long, default_value_t = 200)]
    pub messages: usize,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The federation report, counted per intended device, plus what is particular to devices.
#[derive(Debug, Clone, Serialize)]
pub struct MultideviceReport {
    /// The common counts; `delivered` and `lost` per intended device.
    #[serde(flatten)]
    pub report: Report,
    /// Devices in all (the removed one included).
    pub devices: usize,
    /// Devices offline while a phase's messages were sent.
    pub offline_devices: usize,
    /// Members of the group.
    pub group_members: usize,
    /// From a read on one device until the account's other online devices show it.
    pub sync_lag_ms: Percentiles,
    /// Reads measured for `sync_lag_ms`.
    pub sync_reads: usize,
    /// Reads that did not show on the other devices in time.
    pub sync_unconfirmed: usize,
    /// Messages sent after a device's removal that it fetched or stored anyway.
    pub removed_device_leaks: usize,
    /// Group session keys the removed device held when it was removed.
    pub removed_device_group_keys: usize,
    /// Group messages sent after the removal with a session the removed device holds the
    /// key of (counted in `removed_device_leaks` too).
    pub removed_device_readable: usize,
    /// Times the removed device tried to connect and subscribe.
    pub removed_device_attempts: usize,
    /// Attempts refused with `device_revoked` (at connect / subscribe, or at registering
    /// again after a `not_registered`).
    pub removed_device_revoked: usize,
    /// Attempts whose connect or subscribe was answered `not_registered` first.
    pub removed_device_not_registered: usize,
    /// From the removal until every other device held the account's new list (told by a
    /// notice over Olm), after which phase 2 starts: members rotate their group sessions
    /// once they hold it.
    pub removal_learned_ms: f64,
    /// Devices that did not hold the new list within 30 s (phase 2 started anyway).
    pub removal_unlearned: usize,
}

impl MultideviceReport {
    /// Whether nothing was lost, duplicated, reordered or leaked, every read showed, and the
    /// removed device was refused as revoked every time.
    pub fn passed(&self) -> bool {
        self.report.passed()
            && self.removed_device_leaks == 0
            && self.sync_unconfirmed == 0
            && self.removed_device_revoked == self.removed_device_attempts
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        self.report.print(false)?;
        println!(
            "  {} devices ({} offline for a while); group of {} users; delivered counts each intended device",
            self.devices, self.offline_devices, self.group_members
        );
        println!(
            "  read on one device -> shown on the others ({} reads, {} unconfirmed): {}",
            self.sync_reads, self.sync_unconfirmed, self.sync_lag_ms
        );
        println!(
            "  removed device: {} leaks ({} group messages sent after it with a key it holds, of {} group keys it held); {} of {} attempts to come back refused as revoked ({} answered not_registered before registering again)",
            self.removed_device_leaks,
            self.removed_device_readable,
            self.removed_device_group_keys,
            self.removed_device_revoked,
            self.removed_device_attempts,
            self.removed_device_not_registered
        );
        println!(
            "  every other device held the list without it {:.0} ms after the removal ({} did not in time)",
            self.removal_learned_ms, self.removal_unlearned
        );
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

impl Outcome for MultideviceReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some(
            "the multidevice scenario found lost, duplicated, reordered or leaked messages, an unsynced read, or a removed device let back",
        )
    }
}

/// The receiving sessions of every device, each online while its flag says so.
struct Receivers {
    flags: Vec<(Dev, watch::Sender<bool>)>,
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Receivers {
    fn start(world: &World) -> Self {
        let stop = CancellationToken::new();
        let mut flags = Vec::new();
        let mut tasks = JoinSet::new();
        for dev in world.all() {
            let (flag, online) = watch::channel(true);
            flags.push((dev, flag));
            tasks.spawn(users::receive(
                world.client(dev).clone(),
                online,
                stop.clone(),
            ));
        }
        Self { flags, tasks, stop }
    }

    /// Takes the devices `away` says offline, the others online.
    fn set(&self, away: impl Fn(Dev) -> bool) {
        for (dev, flag) in &self.flags {
            flag.send_replace(!away(*dev));
        }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<MultideviceReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(params.users >= 2, "at least two users");
    ensure!(params.devices_per_user >= 1, "at least one device per user");
    let started = Instant::now();
    let cluster = Cluster::start(work, params.relays).await?;
    let group_size = (params.users / 2 + 1).max(3).min(params.users);
    let world = World::build(
        &work.join("users"),
        &cluster,
        params.users,
        params.devices_per_user,
        group_size,
    )
    .await?;
    // The last device of the user with the most devices (a group member when it can be).
    let removed: Option<Dev> = (0..params.users)
        .max_by_key(|user| (world.devices[*user].len(), std::cmp::Reverse(*user)))
        .filter(|user| world.devices[*user].len() > 1)
        .map(|user| (user, world.devices[user].len() - 1));
    let devices: Vec<Dev> = world.all().collect();
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut plan = Plan::new();
    let mut counters = std::collections::HashMap::new();
    let receivers = Receivers::start(&world);

    // Phase 1: every device may send; a quarter of the devices are offline meanwhile.
    let first_half = params.messages / 2;
    let away_first = |dev: Dev| device_ordinal(&devices, dev) % 4 == 3;
    receivers.set(away_first);
    let lists = workload(&world, &mut rng, &mut plan, &mut counters, first_half, None);
    send_all(&world, lists).await;
    receivers.set(|_| false);
    let deadline = Instant::now() + QUIESCENCE_TIMEOUT;
    let first = tally::settle(&world, &plan, None, deadline).await?;
    ensure!(
        first.settled(plan.len()),
        "the messages before the removal did not settle: {} lost, {} pending",
        first.lost(),
        first.pending
    );

    // The removal, then phase 2 without that device, another quarter offline.
    let probe_stop = CancellationToken::new();
    let (mut unlearned, mut learned_ms) = (0, 0.0);
    let probe = match removed {
        Some(dev) => {
            receivers.set(|other| other == dev);
            // Its session is closed before the primary removes it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let removed_at = Instant::now();
            let version = world
                .client((dev.0, 0))
                .remove_device(world.client(dev).address().device)
                .await?;
            // Senders rotate once they hold the new list: online devices are told at once.
            unlearned = learned(&world, dev, version).await?;
            learned_ms = removed_at.elapsed().as_secs_f64() * 1000.0;
            Some(tokio::spawn(probes::removed_device_returns(
                world.client(dev).clone(),
                probe_stop.clone(),
            )))
        }
        None => None,
    };
    let away_second = |dev: Dev| Some(dev) == removed || device_ordinal(&devices, dev) % 4 == 1;
    receivers.set(away_second);
    let second_half = params.messages - first_half;
    let lists = workload(
        &world,
        &mut rng,
        &mut plan,
        &mut counters,
        second_half,
        removed,
    );
    send_all(&world, lists).await;
    receivers.set(|dev| Some(dev) == removed);
    let deadline = Instant::now() + QUIESCENCE_TIMEOUT;
    let tally = tally::settle(&world, &plan, removed, deadline).await?;
    let keys = match removed {
        Some(dev) => probes::removed_device_group_keys(&world, &plan, dev)?,
        None => probes::GroupKeys::default(),
    };
    let lags = probes::sync_lags(&world, removed).await?;
    probe_stop.cancel();
    let returns = match probe {
        Some(probe) => probe.await?,
        None => probes::Returns::default(),
    };
    receivers.stop().await;
    cluster.stop().await?;

    let offline_devices = devices
        .iter()
        .filter(|dev| away_first(**dev) || (away_second(**dev) && Some(**dev) != removed))
        .count();
    let leaks = tally.leaks + returns.fetched + keys.readable;
    let report = Report {
        scenario: "multidevice",
        relays: params.relays,
        users: params.users,
        sent: params.messages,
        accepted: tally.accepted,
        delivered: tally.delivered,
        lost: tally.lost(),
        duplicates: tally.duplicates,
        out_of_order: tally.out_of_order,
        latency_ms: Percentiles::of(tally.latencies),
        wall_s: started.elapsed().as_secs_f64(),
        offline_users: offline_users(&devices, |dev| {
            away_first(dev) || (away_second(dev) && Some(dev) != removed)
        }),
        seed: params.seed,
    };
    Ok(MultideviceReport {
        report,
        devices: devices.len(),
        offline_devices,
        group_members: world.members.len(),
        sync_reads: lags.lags.len() + lags.unconfirmed,
        sync_unconfirmed: lags.unconfirmed,
        sync_lag_ms: Percentiles::of(lags.lags),
        removed_device_leaks: leaks,
        removed_device_group_keys: keys.held,
        removed_device_readable: keys.readable,
        removed_device_attempts: returns.attempts,
        removed_device_revoked: returns.revoked,
        removed_device_not_registered: returns.not_registered,
        removal_learned_ms: learned_ms,
        removal_unlearned: unlearned,
    })
}

/// How long the other devices may take to hold the account's list without a removed device.
const LEARN_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until every device but `removed` holds its account's list `version` (or newer);
/// returns how many did not within [`LEARN_TIMEOUT`].
async fn learned(world: &World, removed: Dev, version: u64) -> anyhow::Result<usize> {
    let account = world.client(removed).user_id();
    let deadline = Instant::now() + LEARN_TIMEOUT;
    loop {
        let mut behind = 0;
        for dev in world.all().filter(|dev| *dev != removed) {
            let held = world.client(dev).store().device_list(&account)?;
            if held.is_none_or(|list| list.list.version < version) {
                behind += 1;
            }
        }
        if behind == 0 || Instant::now() >= deadline {
            return Ok(behind);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A device's place among all devices (user then device order).
fn device_ordinal(devices: &[Dev], dev: Dev) -> usize {
    devices.iter().position(|other| *other == dev).unwrap_or(0)
}

/// Users with a device that `away` took offline in some phase.
fn offline_users(devices: &[Dev], away: impl Fn(Dev) -> bool) -> usize {
    let users: std::collections::BTreeSet<usize> = devices
        .iter()
        .filter(|dev| away(**dev))
        .map(|dev| dev.0)
        .collect();
    users.len()
}

/// Per device, the (contact or group, text) list it sends in order: `count` messages from
/// random devices (not `removed`), 1:1 to random other users or, from group members, to the
/// group. Texts name the sending device, the target and a counter; each goes into `plan`.
fn workload(
    world: &World,
    rng: &mut StdRng,
    plan: &mut Plan,
    counters: &mut std::collections::HashMap<(Dev, Target), u64>,
    count: usize,
    removed: Option<Dev>,
) -> Vec<(Dev, Vec<(String, String)>)> {
    let senders: Vec<Dev> = world.all().filter(|dev| Some(*dev) != removed).collect();
    let users = world.devices.len();
    let mut lists: Vec<(Dev, Vec<(String, String)>)> =
        senders.iter().map(|dev| (*dev, Vec::new())).collect();
    for _ in 0..count {
        let index = rng.random_range(0..senders.len());
        let sender = senders[index];
        let target = if world.members.contains(&sender.0) && rng.random_bool(GROUP_SHARE) {
            Target::Group
        } else {
            let mut to = rng.random_range(0..users - 1);
            if to >= sender.0 {
                to += 1;
            }
            Target::User(to)
        };
        let counter = counters.entry((sender, target)).or_insert(0);
        *counter += 1;
        let (contact, shown) = match target {
            Target::User(to) => (name(to), name(to)),
            Target::Group => (GROUP.to_string(), "group".to_string()),
        };
        let text = format!("u{}.{}>{shown}#{counter}", sender.0, sender.1);
        plan.insert(
            text.clone(),
            Planned {
                sender,
                target,
                after_removal: removed.is_some(),
            },
        );
        lists[index].1.push((contact, text));
    }
    lists
}

/// Sends every device's list, all devices at once; returns when all are done.
async fn send_all(world: &World, lists: Vec<(Dev, Vec<(String, String)>)>) {
    let mut senders = JoinSet::new();
    for (dev, list) in lists {
        if !list.is_empty() {
            senders.spawn(users::send(world.client(dev).clone(), list));
        }
    }
    while senders.join_next().await.is_some() {}
}
