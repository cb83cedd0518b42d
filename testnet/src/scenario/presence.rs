//! `scenario presence`: subjects' devices (real processes) come online, then leave cleanly,
//! are killed, or vanish (frozen with their connection open), while watchers spread over the
//! relays watch them under everyone / contacts / nobody privacy, type to and write to each
//! other, and read. It checks what every watcher was told, and when.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde::Serialize;
use tidings_client::Client;
use tidings_protocol::presence::{PresenceState, Visibility};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{
    users::{self, name},
    watcher::{Command, Observation, SharedLog, Watcher, lock},
};
use crate::{
    cluster::Cluster,
    device::{Departure, DeviceProcess, log_path},
    report::{Outcome, Percentiles},
};

/// How long past the heartbeat timeout a vanished device may still look online.
const GRACE: Duration = Duration::from_secs(3);
/// How long watchers get to hear of a device coming online, or of typing and reads.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Departures by round: each subject leaves a different way in consecutive rounds.
const DEPARTURES: [Departure; 3] = [Departure::Clean, Departure::Killed, Departure::Vanished];

/// Size and timing of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 3)]
    pub relays: usize,
    /// Users: even-numbered ones watch, odd-numbered ones (the subjects) come and go.
    #[arg(long, default_value_t = 12)]
    pub users: usize,
    /// Rounds of coming online, typing and reading, and leaving.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The relays' heartbeat timeout in seconds (`presence.heartbeat_timeout_secs`: how
    /// long a vanished device may look online).
    #[arg(long = "heartbeat-timeout", value_name = "SECS", default_value_t = 3)]
    pub heartbeat_timeout_secs: u64,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PresenceReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Users in all.
    pub users: usize,
    /// Users who watch.
    pub watchers: usize,
    /// Users whose devices come and go.
    pub subjects: usize,
    /// Rounds run.
    pub rounds: usize,
    /// The relays' heartbeat timeout, in seconds.
    pub heartbeat_timeout_s: u64,
    /// Presence changes pushed to watchers.
    pub presence_updates: usize,
    /// From a device subscribing, closing or being killed to a watcher being told.
    pub presence_latency_ms: Percentiles,
    /// From a device vanishing to a watcher being told it is offline.
    pub vanished_offline_ms: Percentiles,
    /// Changes a watcher allowed to see them was never told of.
    pub missed_updates: usize,
    /// Anything but "hidden" told to a watcher the subject does not allow.
    pub privacy_violations: usize,
    /// Typing notices sent to online watchers.
    pub typing_sent: usize,
    /// Of those, how many reached the watcher.
    pub typing_seen: usize,
    /// Typing notices sent to subjects who had left.
    pub typing_to_offline: usize,
    /// Of those, how many a relay reported as passed to a live device.
    pub typing_to_offline_reached: usize,
    /// Typing notices the relays stored (their `envelopes_stored` counter).
    pub typing_stored: u64,
    /// Messages the relays stored (the same counter, as a check that it counts).
    pub messages_stored: u64,
    /// Texts between watchers the relay took.
    pub texts_sent: usize,
    /// Of those, how many turned read (the reader's read-up-to marker came back).
    pub texts_read: usize,
    /// A departed subject still shown online to an allowed watcher after the heartbeat
    /// timeout and grace.
    pub stale_online_after_timeout: usize,
    /// Wall-clock seconds for the whole run.
    pub wall_s: f64,
}

impl PresenceReport {
    /// Whether presence held: private, timely, never stored, nothing missed.
    pub fn passed(&self) -> bool {
        self.privacy_violations == 0
            && self.typing_stored == 0
            && self.stale_online_after_timeout == 0
            && self.missed_updates == 0
            && self.typing_seen == self.typing_sent
            && self.texts_read == self.texts_sent
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        let p = &self.presence_latency_ms;
        let v = &self.vanished_offline_ms;
        println!(
            "presence: {} relays, {} watchers, {} subjects, {} rounds (heartbeat timeout {} s)",
            self.relays, self.watchers, self.subjects, self.rounds, self.heartbeat_timeout_s
        );
        println!(
            "  {} updates pushed; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} missed",
            self.presence_updates, p.p50, p.p99, p.max, self.missed_updates
        );
        println!(
            "  vanished devices shown offline after p50 {:.0} ms, max {:.0} ms; {} still online after the timeout",
            v.p50, v.max, self.stale_online_after_timeout
        );
        println!("  privacy violations: {}", self.privacy_violations);
        println!(
            "  typing: {}/{} seen live, {} to offline users ({} reached a device), {} stored",
            self.typing_seen,
            self.typing_sent,
            self.typing_to_offline,
            self.typing_to_offline_reached,
            self.typing_stored
        );
        println!(
            "  texts between watchers: {}/{} read",
            self.texts_read, self.texts_sent
        );
        println!("  {:.1} s", self.wall_s);
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

/// Who may see whom, and the latency samples so far.
struct Plan {
    /// Each subject's choice.
    visibility: Vec<Visibility>,
    watchers: usize,
}

impl Plan {
    /// Subject `k` chooses everyone, contacts (every other watcher) or nobody, in turn.
    fn new(subjects: usize, watchers: usize) -> Self {
        let visibility = (0..subjects)
            .map(|k| match k % 3 {
                0 => Visibility::Everyone,
                1 => Visibility::Contacts,
                _ => Visibility::Nobody,
            })
            .collect();
        Self {
            visibility,
            watchers,
        }
    }

    /// Whether watcher `j` is in subject `k`'s contacts (under `contacts`).
    fn is_contact(j: usize) -> bool {
        j.is_multiple_of(2)
    }

    fn permits(&self, subject: usize, watcher: usize) -> bool {
        match self.visibility[subject] {
            Visibility::Everyone => true,
            Visibility::Contacts => Self::is_contact(watcher),
            Visibility::Nobody => false,
        }
    }

    /// (watcher, subject) pairs allowed to see each other, for the subjects in `subjects`.
    fn allowed_pairs(&self, subjects: &[usize]) -> Vec<(usize, usize)> {
        subjects
            .iter()
            .flat_map(|&k| (0..self.watchers).map(move |j| (j, k)))
            .filter(|&(j, k)| self.permits(k, j))
            .collect()
    }
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<PresenceReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(
        params.users >= 4,
        "at least four users (two watch, two come and go)"
    );
    ensure!(params.rounds >= 1, "at least one round");
    ensure!(
        params.heartbeat_timeout_secs >= 1,
        "a heartbeat timeout of at least 1 s"
    );
    let started = Instant::now();
    let timeout = params.heartbeat_timeout_secs;
    let cluster = Cluster::start_with(work, params.relays, |config| {
        config.presence.heartbeat_timeout_secs = timeout;
    })
    .await?;
    let dir = work.join("users");
    let clients = users::register_all(&dir, params.users, &cluster).await?;
    let watcher_users: Vec<usize> = (0..params.users).step_by(2).collect();
    let subject_users: Vec<usize> = (1..params.users).step_by(2).collect();
    let plan = Plan::new(subject_users.len(), watcher_users.len());
    introduce(&clients, &watcher_users, &subject_users, &plan).await?;

    let log = SharedLog::default();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut commands = Vec::new();
    for (j, &user) in watcher_users.iter().enumerate() {
        let (send, receive) = mpsc::channel(16);
        commands.push(send);
        let watcher = Watcher {
            index: j,
            client: clients[user].clone(),
            subjects: subject_users.iter().map(|&s| name(s)).collect(),
            subject_ids: subject_users
                .iter()
                .enumerate()
                .map(|(k, &s)| (clients[s].user_id(), k))
                .collect(),
            peers: watcher_users
                .iter()
                .map(|&w| (clients[w].user_id(), name(w)))
                .collect(),
        };
        tasks.spawn(watcher.run(log.clone(), receive, stop.clone()));
    }
    let mut run = Run {
        plan: &plan,
        log: &log,
        commands: &commands,
        watcher_users: &watcher_users,
        subject_users: &subject_users,
        timeout: Duration::from_secs(timeout),
        tally: Tally::default(),
    };
    // Each watcher writes to the next one and to one subject first, so typing has a device
    // to go to.
    run.texts(true).await?;
    for round in 0..params.rounds {
        run.round(&dir, round).await?;
    }
    stop.cancel();
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let typing_stored = cluster.envelopes_stored("Typing").await?;
    let messages_stored = cluster.envelopes_stored("Message").await?;
    cluster.stop().await?;

    let tally = run.tally;
    let log = lock(&log);
    let privacy_violations = log
        .observations
        .iter()
        .filter(|o| !plan.permits(o.subject, o.watcher) && o.state != PresenceState::Hidden)
        .count();
    Ok(PresenceReport {
        scenario: "presence",
        relays: params.relays,
        users: params.users,
        watchers: watcher_users.len(),
        subjects: subject_users.len(),
        rounds: params.rounds,
        heartbeat_timeout_s: timeout,
        presence_updates: log.observations.iter().filter(|o| o.pushed).count(),
        presence_latency_ms: Percentiles::of(tally.latency),
        vanished_offline_ms: Percentiles::of(tally.vanished),
        missed_updates: tally.missed,
        privacy_violations,
        typing_sent: tally.typing_sent,
        typing_seen: log.typing.len(),
        typing_to_offline: tally.typing_to_offline,
        typing_to_offline_reached: tally.typing_to_offline_reached,
        typing_stored,
        messages_stored,
        texts_sent: tally.texts_sent,
        texts_read: log.read_ticks,
        stale_online_after_timeout: tally.stale,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Watchers know everyone; a subject under `contacts` knows only the watchers it allows;
/// each subject sets its choice (briefly online to do so).
async fn introduce(
    clients: &[Client],
    watcher_users: &[usize],
    subject_users: &[usize],
    plan: &Plan,
) -> anyhow::Result<()> {
    let cards = clients
        .iter()
        .map(|client| client.card(None))
        .collect::<Result<Vec<_>, _>>()?;
    for &w in watcher_users {
        for (other, card) in cards.iter().enumerate() {
            if other != w {
                clients[w].add_contact(&name(other), card)?;
            }
        }
    }
    for (k, &s) in subject_users.iter().enumerate() {
        if plan.visibility[k] == Visibility::Contacts {
            for (j, &w) in watcher_users.iter().enumerate() {
                if Plan::is_contact(j) {
                    clients[s].add_contact(&name(w), &cards[w])?;
                }
            }
        }
        let session = users::connect(&clients[s]).await;
        session.set_presence(plan.visibility[k]).await?;
        session.close().await;
    }
    Ok(())
}

/// Counts gathered over the rounds.
#[derive(Default)]
struct Tally {
    latency: Vec<f64>,
    vanished: Vec<f64>,
    missed: usize,
    stale: usize,
    typing_sent: usize,
    typing_to_offline: usize,
    typing_to_offline_reached: usize,
    texts_sent: usize,
}

/// The state of a run between rounds.
struct Run<'a> {
    plan: &'a Plan,
    log: &'a SharedLog,
    commands: &'a [mpsc::Sender<Command>],
    watcher_users: &'a [usize],
    subject_users: &'a [usize],
    timeout: Duration,
    tally: Tally,
}

impl Run<'_> {
    async fn round(&mut self, dir: &Path, round: usize) -> anyhow::Result<()> {
        let subjects: Vec<usize> = (0..self.subject_users.len()).collect();
        let phase_start = Instant::now();
        let mut devices = self.bring_online(dir).await?;
        let online_at: Vec<Instant> = devices.iter().map(|d| d.subscribing_at).collect();
        let pairs = self.plan.allowed_pairs(&subjects);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let want_online = |o: &Observation| o.state == PresenceState::Online && o.at >= phase_start;
        wait_until(deadline, || seen_all(self.log, &pairs, want_online)).await;
        self.sample(&pairs, &online_at, want_online, false);

        self.typing_and_reading().await?;

        let mut left_at = Vec::with_capacity(devices.len());
        let mut how = Vec::with_capacity(devices.len());
        for (k, device) in devices.iter_mut().enumerate() {
            let departure = DEPARTURES[(k + round) % DEPARTURES.len()];
            left_at.push(device.leave(departure).await?);
            how.push(departure);
        }
        let last = left_at.iter().max().copied().unwrap_or_else(Instant::now);
        let deadline = last + self.timeout + GRACE;
        let want_offline = |o: &Observation| {
            matches!(o.state, PresenceState::Offline { .. }) && o.at >= left_at[o.subject]
        };
        wait_until(deadline, || seen_all(self.log, &pairs, want_offline)).await;
        let (vanished, gone): (Vec<_>, Vec<_>) = pairs
            .iter()
            .partition(|&&(_, k)| how[k] == Departure::Vanished);
        self.sample(&gone, &left_at, want_offline, false);
        self.sample(&vanished, &left_at, want_offline, true);
        self.tally.stale += still_online(self.log, &pairs);

        self.typing_to_departed(&how).await?;
        for device in devices {
            device.reap().await?;
        }
        Ok(())
    }

    /// Starts every subject's device; returns them in subject order.
    async fn bring_online(&self, dir: &Path) -> anyhow::Result<Vec<DeviceProcess>> {
        let mut starting = JoinSet::new();
        for (k, &s) in self.subject_users.iter().enumerate() {
            let data_dir = dir.join(name(s));
            starting.spawn(async move {
                let log = log_path(&data_dir);
                (k, DeviceProcess::start(&data_dir, &log).await)
            });
        }
        let mut devices: Vec<Option<DeviceProcess>> =
            (0..self.subject_users.len()).map(|_| None).collect();
        while let Some(joined) = starting.join_next().await {
            let (k, device) = joined?;
            devices[k] = Some(device?);
        }
        Ok(devices.into_iter().flatten().collect())
    }

    /// Each watcher types to the next, then writes to it; waits until the notices arrived
    /// and the texts came back read.
    async fn typing_and_reading(&mut self) -> anyhow::Result<()> {
        for j in 0..self.commands.len() {
            let next = self.watcher_users[(j + 1) % self.watcher_users.len()];
            self.ask_typing(j, next).await?;
            self.tally.typing_sent += 1;
        }
        self.texts(false).await?;
        let (typing, texts) = (self.tally.typing_sent, self.tally.texts_sent);
        let log = self.log;
        wait_until(Instant::now() + SETTLE_TIMEOUT, || {
            let log = lock(log);
            log.typing.len() >= typing && log.read_ticks >= texts
        })
        .await;
        Ok(())
    }

    /// Each watcher writes to the next watcher (and, with `to_subjects`, to one subject).
    async fn texts(&mut self, to_subjects: bool) -> anyhow::Result<()> {
        for j in 0..self.commands.len() {
            let next = self.watcher_users[(j + 1) % self.watcher_users.len()];
            if self.ask_text(j, next).await? {
                self.tally.texts_sent += 1;
            }
            if to_subjects {
                let subject = self.subject_users[j % self.subject_users.len()];
                self.ask_text(j, subject).await?;
            }
        }
        if to_subjects {
            let texts = self.tally.texts_sent;
            let log = self.log;
            wait_until(Instant::now() + SETTLE_TIMEOUT, || {
                lock(log).read_ticks >= texts
            })
            .await;
        }
        Ok(())
    }

    /// Typing to subjects who left cleanly or were killed: no device is there to take it.
    async fn typing_to_departed(&mut self, how: &[Departure]) -> anyhow::Result<()> {
        for j in 0..self.commands.len() {
            let k = j % self.subject_users.len();
            if how[k] == Departure::Vanished {
                continue;
            }
            let reached = self.ask_typing(j, self.subject_users[k]).await?;
            self.tally.typing_to_offline += 1;
            if reached > 0 {
                self.tally.typing_to_offline_reached += 1;
            }
        }
        Ok(())
    }

    async fn ask_typing(&self, watcher: usize, to_user: usize) -> anyhow::Result<u32> {
        let (reply, answer) = oneshot::channel();
        self.commands[watcher]
            .send(Command::Type {
                to: name(to_user),
                reply,
            })
            .await?;
        Ok(answer.await?)
    }

    async fn ask_text(&self, watcher: usize, to_user: usize) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.commands[watcher]
            .send(Command::Text {
                to: name(to_user),
                text: format!("from watcher {watcher}"),
                reply,
            })
            .await?;
        Ok(answer.await?)
    }

    /// Adds, for each pair, the time from `since[subject]` to the first matching
    /// observation, or counts it missed.
    fn sample(
        &mut self,
        pairs: &[(usize, usize)],
        since: &[Instant],
        wanted: impl Fn(&Observation) -> bool,
        vanished: bool,
    ) {
        let log = lock(self.log);
        for &(j, k) in pairs {
            let first = log
                .observations
                .iter()
                .find(|o| o.watcher == j && o.subject == k && o.pushed && wanted(o));
            match first {
                Some(o) => {
                    let ms = o.at.saturating_duration_since(since[k]).as_secs_f64() * 1000.0;
                    if vanished {
                        self.tally.vanished.push(ms);
                    } else {
                        self.tally.latency.push(ms);
                    }
                }
                None => {
                    tracing::warn!(
                        watcher = j,
                        subject = k,
                        vanished,
                        "a watcher was never told"
                    );
                    self.tally.missed += 1;
                }
            }
        }
    }
}

/// Whether every pair has an observation `wanted` accepts.
fn seen_all(
    log: &SharedLog,
    pairs: &[(usize, usize)],
    wanted: impl Fn(&Observation) -> bool,
) -> bool {
    let log = lock(log);
    pairs.iter().all(|&(j, k)| {
        log.observations
            .iter()
            .any(|o| o.watcher == j && o.subject == k && wanted(o))
    })
}

/// Pairs whose latest observation still says online.
fn still_online(log: &SharedLog, pairs: &[(usize, usize)]) -> usize {
    let log = lock(log);
    let mut latest: HashMap<(usize, usize), &PresenceState> = HashMap::new();
    for o in &log.observations {
        latest.insert((o.watcher, o.subject), &o.state);
    }
    pairs
        .iter()
        .filter(|pair| latest.get(pair) == Some(&&PresenceState::Online))
        .count()
}

/// Polls `done` until it holds or `deadline` passes.
async fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Outcome for PresenceReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some("the presence scenario found a privacy violation, a stored typing notice, a missed update or a stale online")
    }
}
