//! `scenario push`: devices stay offline with a Web Push subscription at their relay; users
//! send them 1:1 and group messages; each push reaches a receiver on loopback that decrypts
//! it and wakes its device (connect, drain, ack, disconnect). Nothing may be missed, and no
//! push may carry a message's text or who sent it.

mod receiver;
mod relays;
mod tally;
mod waker;
mod workload;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use serde::Serialize;
use tidings_client::Client;
use tidings_protocol::GroupId;
use tokio::task::JoinSet;

use self::{
    receiver::{DeviceKeys, Receiver, Secrets},
    waker::{Doorbell, Wakers},
    workload::{Planned, Target},
};
use super::users;
use crate::{
    cluster::Cluster,
    report::{self, Percentiles},
};

/// The relays' `push.interval_secs`: at most one push per device per second.
const PUSH_INTERVAL_SECS: u64 = 1;

/// How long the scenario waits, after the last send, for the wakes to store everything.
const QUIESCENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// With deliveries still owed, how long without a push or a wake ends the wait early
/// (a push folded into the next interval comes within one interval; a retry within 1 s).
const QUIET: Duration = Duration::from_secs(2 * PUSH_INTERVAL_SECS + 2);

/// How much sooner than the interval a push may arrive after the previous one to the same
/// device (both POSTs' own delays vary).
const INTERVAL_SLACK: Duration = Duration::from_millis(250);

/// How long each device's final sync may take.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Most users in a run.
const MAX_USERS: usize = 200;

/// Most messages in a run.
const MAX_MESSAGES: usize = 100_000;

/// The group's name in every member's client.
const GROUP: &str = "push";

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 2)]
    pub relays: usize,
    /// Users (one device each), homed round-robin on the relays; the first half (at least
    /// three) share a group.
    #[arg(long, default_value_t = 4)]
    pub users: usize,
    /// Messages in total, 1:1 and to the group, from random users.
    #[arg(long, default_value_t = 24)]
    pub messages: usize,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What the run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Always "push".
    pub scenario: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Users (each one device, offline but for its wakes).
    pub users: usize,
    /// Members of the group (0: no group).
    pub group_members: usize,
    /// The relays' `push.interval_secs`.
    pub interval_secs: u64,
    /// Messages sent.
    pub messages: usize,
    /// Of which their sender's relay accepted (✓).
    pub accepted: usize,
    /// Deliveries owed: one per message and recipient.
    pub deliveries: usize,
    /// Deliveries stored on the recipient's device (by a wake or the final sweep).
    pub delivered: usize,
    /// Deliveries never stored.
    pub lost: usize,
    /// Pushes received that decrypted to a Tidings notice.
    pub pushes: usize,
    /// The notices' counts, summed (entries announced).
    pub announced: u64,
    /// Pushes that arrived sooner than the interval after the previous one to their device.
    pub pushes_within_interval: usize,
    /// Wakes the pushes caused.
    pub wakeups: usize,
    /// Wakes that failed every try.
    pub failed_wakeups: usize,
    /// From a push arriving at the receiver to a message stored on the device it woke.
    pub push_to_delivered_ms: Percentiles,
    /// How long a wake took (connect, drain, ack, send, disconnect).
    pub wake_ms: Percentiles,
    /// Deliveries of accepted messages that no wake stored: stored only by the final sweep,
    /// or never.
    pub missed: usize,
    /// Pushes whose body, raw or decrypted, held a message's text, a user's id, device id or
    /// name, or more than the notice.
    pub leaked_content: usize,
    /// Requests to the receiver that were no valid push (unencrypted, unsigned, no TTL, not
    /// decrypting, not a notice, to no device).
    pub bad_pushes: usize,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
    /// Seed of the workload.
    pub seed: u64,
}

impl PushReport {
    /// Whether every delivery came by a push's wake, no push leaked anything, and every
    /// push was valid.
    pub fn passed(&self) -> bool {
        self.missed == 0
            && self.leaked_content == 0
            && self.lost == 0
            && self.bad_pushes == 0
            && self.pushes_within_interval == 0
            && self.accepted == self.messages
            && self.delivered == self.deliveries
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "push scenario: {} relays, {} users offline with a push subscription (group of {}), {} messages, push interval {} s, seed {}",
            self.relays,
            self.users,
            self.group_members,
            self.messages,
            self.interval_secs,
            self.seed
        );
        println!(
            "  accepted {}  deliveries {}  delivered {}  lost {}",
            self.accepted, self.deliveries, self.delivered, self.lost
        );
        println!(
            "  pushes {} (announcing {} entries; {} sooner than the interval)  wakeups {} ({} failed)  bad pushes {}",
            self.pushes,
            self.announced,
            self.pushes_within_interval,
            self.wakeups,
            self.failed_wakeups,
            self.bad_pushes
        );
        println!(
            "  push -> stored on the woken device: {}",
            self.push_to_delivered_ms
        );
        println!("  a wake: {}", self.wake_ms);
        println!(
            "  missed (no push woke the device for it) {}  leaked content {}",
            self.missed, self.leaked_content
        );
        println!("  wall {:.1} s", self.wall_s);
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

impl report::Outcome for PushReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some(
            "the push scenario found a message no push woke its device for, a push carrying content, an invalid or too early push, or a lost message",
        )
    }
}

/// Milliseconds since the epoch, on the clock the client stamps `stored_at_ms` with.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

/// Contact name of user `index` in every other user's address book (long enough that
/// finding it in a push body means it is there, not chance).
fn contact(index: usize) -> String {
    format!("push-user-{index}")
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<PushReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(
        (2..=MAX_USERS).contains(&params.users),
        "between 2 and {MAX_USERS} users"
    );
    ensure!(
        params.messages <= MAX_MESSAGES,
        "at most {MAX_MESSAGES} messages"
    );
    let started = Instant::now();
    let cluster = Cluster::start_prepared(
        work,
        params.relays,
        |_| {},
        |dir| relays::allow_loopback_pushes(dir, PUSH_INTERVAL_SECS),
    )
    .await?;
    let outcome = run_on(work, &cluster, params).await;
    cluster.stop().await?;
    let mut report = outcome?;
    report.wall_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The run on a started cluster.
async fn run_on(work: &Path, cluster: &Cluster, params: Params) -> anyhow::Result<PushReport> {
    let clients = users::register_all(&work.join("users"), params.users, cluster).await?;
    introduce_all(&clients)?;
    let members: Vec<usize> = if params.users >= 3 {
        (0..(params.users / 2).max(3)).collect()
    } else {
        Vec::new()
    };
    let group = make_group(&clients, &members).await?;
    let plan = workload::draw(params.users, &members, params.messages, params.seed);

    // Every device subscribes, then stays offline: only its wakes connect it.
    let doorbells: Vec<Arc<Doorbell>> = (0..params.users).map(|_| Arc::default()).collect();
    let keys = (0..params.users).map(|_| DeviceKeys::generate()).collect();
    let receiver = Receiver::start(keys, doorbells.clone(), secrets(&clients, &plan)).await?;
    for (index, client) in clients.iter().enumerate() {
        let subscription = receiver
            .subscription(index)
            .context("a device without keys")?;
        let state = client
            .set_push(Some(subscription))
            .await
            .with_context(|| format!("subscribing {}", contact(index)))?;
        ensure!(
            !state.vapid_key.is_empty() && state.subscription.is_some(),
            "the relay of {} does not send pushes",
            contact(index)
        );
    }
    let wakers = Wakers::start(&clients, &doorbells);

    send_all(&clients, &plan).await;
    wait_for_wakes(&clients, &plan, group, &receiver, &wakers).await?;
    let wakeups = wakers.stop().await;
    sweep(&clients).await;
    let tally = tally::count(&clients, &plan, group, &wakeups)?;
    let seen = receiver.stop().await;

    let wake_ms = wakeups
        .iter()
        .filter(|wakeup| !wakeup.failed)
        .map(|wakeup| wakeup.ended_ms.saturating_sub(wakeup.started_ms) as f64)
        .collect();
    Ok(PushReport {
        scenario: "push",
        relays: params.relays,
        users: params.users,
        group_members: members.len(),
        interval_secs: PUSH_INTERVAL_SECS,
        messages: plan.len(),
        accepted: tally.accepted,
        deliveries: tally.deliveries,
        delivered: tally.delivered,
        lost: tally.lost,
        pushes: seen.pushes,
        announced: seen
            .arrivals
            .iter()
            .map(|arrival| u64::from(arrival.count))
            .sum(),
        pushes_within_interval: seen
            .too_soon(Duration::from_secs(PUSH_INTERVAL_SECS), INTERVAL_SLACK),
        wakeups: wakeups.len(),
        failed_wakeups: wakeups.iter().filter(|wakeup| wakeup.failed).count(),
        push_to_delivered_ms: Percentiles::of(tally.push_to_delivered),
        wake_ms: Percentiles::of(wake_ms),
        missed: tally.missed,
        leaked_content: seen.leaked,
        bad_pushes: seen.bad,
        wall_s: 0.0,
        seed: params.seed,
    })
}

/// Makes every user a contact of every other, user `i` named [`contact`]`(i)`.
fn introduce_all(clients: &[Client]) -> anyhow::Result<()> {
    let cards = clients
        .iter()
        .map(|client| client.card(None))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, client) in clients.iter().enumerate() {
        for (other, card) in cards.iter().enumerate() {
            if other != index {
                client.add_contact(&contact(other), card)?;
            }
        }
    }
    Ok(())
}

/// Creates the group of `members` (by the first) and waits until each member knows it.
async fn make_group(clients: &[Client], members: &[usize]) -> anyhow::Result<Option<GroupId>> {
    let Some((creator, others)) = members.split_first() else {
        return Ok(None);
    };
    let names: Vec<String> = others.iter().map(|member| contact(*member)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut session = users::connect(&clients[*creator]).await;
    let group = session.create_group(GROUP, &names).await?;
    session.close().await;
    for member in others {
        users::wait_for_group(&clients[*member], group).await?;
    }
    Ok(Some(group))
}

/// What no push may carry: every message's text, every user's id (as text and as bytes),
/// device id and contact name.
fn secrets(clients: &[Client], plan: &[Planned]) -> Secrets {
    let mut secrets = Secrets::default();
    for message in plan {
        secrets.add(
            format!("the text of message \"{}\"", message.text),
            message.text.clone().into_bytes(),
        );
    }
    for (index, client) in clients.iter().enumerate() {
        let address = client.address();
        let who = contact(index);
        secrets.add(
            format!("the user id of {who}"),
            address.user.to_string().into_bytes(),
        );
        secrets.add(
            format!("the user id bytes of {who}"),
            address.user.as_bytes().to_vec(),
        );
        secrets.add(
            format!("the device id of {who}"),
            address.device.to_string().into_bytes(),
        );
        secrets.add(format!("the name {who}"), who.into_bytes());
    }
    secrets
}

/// Each sender sends its messages in order (senders at once), on sessions that never
/// subscribe: sending does not take a device online.
async fn send_all(clients: &[Client], plan: &[Planned]) {
    let mut lists: Vec<Vec<(String, String)>> = vec![Vec::new(); clients.len()];
    for message in plan {
        let to = match message.target {
            Target::User(to) => contact(to),
            Target::Group => GROUP.to_string(),
        };
        lists[message.from].push((to, message.text.clone()));
    }
    let mut senders = JoinSet::new();
    for (sender, list) in lists.into_iter().enumerate() {
        if !list.is_empty() {
            senders.spawn(users::send(clients[sender].clone(), list));
        }
    }
    while senders.join_next().await.is_some() {}
}

/// Waits until the wakes stored every delivery, or nothing happened for [`QUIET`] while no
/// device is awake, or [`QUIESCENCE_TIMEOUT`].
async fn wait_for_wakes(
    clients: &[Client],
    plan: &[Planned],
    group: Option<GroupId>,
    receiver: &Receiver,
    wakers: &Wakers,
) -> anyhow::Result<()> {
    let sends_done_ms = now_ms();
    let deadline = Instant::now() + QUIESCENCE_TIMEOUT;
    loop {
        let (delivered, owed) = tally::delivered_now(clients, plan, group)?;
        if delivered == owed {
            return Ok(());
        }
        let last_activity = [
            Some(sends_done_ms),
            receiver.last_arrival_ms(),
            wakers.last_ended_ms(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(sends_done_ms);
        let quiet = now_ms().saturating_sub(last_activity) > QUIET.as_millis() as u64;
        if (quiet && !wakers.busy()) || Instant::now() >= deadline {
            tracing::warn!(delivered, owed, "the wakes stopped short");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every device syncs once more: what it stores now no push woke it for.
async fn sweep(clients: &[Client]) {
    let mut syncs = JoinSet::new();
    for client in clients {
        let client = client.clone();
        syncs.spawn(async move {
            let mut session = users::connect(&client).await;
            if let Err(error) = session.sync(SWEEP_TIMEOUT).await {
                tracing::warn!(%error, "a final sync failed");
            }
            session.close().await;
        });
    }
    while syncs.join_next().await.is_some() {}
}
