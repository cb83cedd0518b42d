//! `scenario status`: users spread over relay processes post statuses to random audiences
//! ("only these" or "all contacts except"); everyone fetches and views what their relay
//! hands them. A status seen or even fetched by someone outside its audience is a leak, one
//! an audience member never sees is lost. The statuses live a few seconds here (the relays
//! take any lifetime up to 24 hours); after their expiry plus one sweep, no relay may still
//! hold one and no client may still show one.

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tidings_client::{
    Client,
    status::{Audience, StatusClock},
};
use tidings_protocol::EnvelopeId;

use super::users::{self, introduce_all, name};
use crate::{cluster::Cluster, report};

/// The relays' `status.sweep_interval_secs`.
const SWEEP_INTERVAL_SECS: u64 = 1;

/// How long viewers keep asking for statuses still owed to them.
const VIEW_DEADLINE: Duration = Duration::from_secs(20);

/// Most users in a run.
const MAX_USERS: usize = 200;

/// Most posts in a run.
const MAX_POSTS: usize = 10_000;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 2)]
    pub relays: usize,
    /// Users (one device each, all contacts of each other), homed round-robin.
    #[arg(long, default_value_t = 4)]
    pub users: usize,
    /// Statuses posted, by random users to random audiences.
    #[arg(long, default_value_t = 8)]
    pub posts: usize,
    /// How long each status lives, seconds (real ones: 24 hours).
    #[arg(long, default_value_t = 30)]
    pub lifetime_secs: u64,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What the run did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusReport {
    /// Always "status".
    pub scenario: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Users.
    pub users: usize,
    /// Statuses posted (accepted by the poster's relay).
    pub posts: usize,
    /// Audience members owed a view, over all posts.
    pub owed: usize,
    /// Views: a status shown to a member of its audience.
    pub views: usize,
    /// Statuses shown to, or handed by a relay to, someone outside their audience.
    pub leaked: usize,
    /// Owed views that never happened.
    pub lost: usize,
    /// Statuses a relay still held after their expiry plus one sweep interval.
    pub expired_still_stored: u64,
    /// Statuses a client still showed after their expiry.
    pub expired_still_shown: usize,
    /// Wall-clock time of the run, seconds.
    pub wall_s: f64,
    /// Seed of the workload.
    pub seed: u64,
}

impl StatusReport {
    /// Nothing leaked, lost or kept past expiry.
    pub fn passed(&self) -> bool {
        self.leaked == 0
            && self.lost == 0
            && self.expired_still_stored == 0
            && self.expired_still_shown == 0
            && self.views == self.owed
    }
}

impl report::Outcome for StatusReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "status scenario: {} relays, {} users, {} posts, seed {}",
            self.relays, self.users, self.posts, self.seed
        );
        println!(
            "  owed {}  views {}  lost {}  leaked {}",
            self.owed, self.views, self.lost, self.leaked
        );
        println!(
            "  after expiry: still stored on relays {}  still shown by clients {}",
            self.expired_still_stored, self.expired_still_shown
        );
        println!("  wall {:.1} s", self.wall_s);
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some(
            "the status scenario found a leaked or lost status, or one kept past its expiry",
        )
    }
}

/// One planned post.
struct Planned {
    from: usize,
    audience: Audience,
    members: BTreeSet<usize>,
    text: String,
}

fn draw(users: usize, count: usize, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    (1..=count)
        .map(|number| {
            let from = rng.random_range(0..users);
            let others: Vec<usize> = (0..users).filter(|user| *user != from).collect();
            let mut members: BTreeSet<usize> = others
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.5))
                .collect();
            if members.is_empty() {
                members.insert(others[rng.random_range(0..others.len())]);
            }
            let audience = if rng.random_bool(0.5) || members.len() == others.len() {
                Audience::Only(members.iter().map(|user| name(*user)).collect())
            } else {
                let left_out = others.iter().filter(|user| !members.contains(user));
                Audience::Except(left_out.map(|user| name(*user)).collect())
            };
            let tag: u64 = rng.random();
            Planned {
                from,
                audience,
                members,
                text: format!("status {tag:016x} by u{from} #{number}"),
            }
        })
        .collect()
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<StatusReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(
        (2..=MAX_USERS).contains(&params.users),
        "between 2 and {MAX_USERS} users"
    );
    ensure!(params.posts <= MAX_POSTS, "at most {MAX_POSTS} posts");
    ensure!(
        params.lifetime_secs >= 5,
        "statuses must live at least 5 s to be viewed"
    );
    let started = Instant::now();
    let cluster = Cluster::start_with(work, params.relays, |config| {
        config.status.sweep_interval_secs = SWEEP_INTERVAL_SECS;
    })
    .await?;
    let outcome = run_on(work, &cluster, params).await;
    cluster.stop().await?;
    let (mut report, expire_at) = outcome?;
    // The relays are stopped: count what their status files still hold, all expired by now.
    for index in 0..params.relays {
        let dir = work.join(format!("relay{}", index + 1));
        let db = tidings_relay::store::status::open(&dir).context("opening a status file")?;
        report.expired_still_stored += tidings_relay::store::status::count(&db)?;
    }
    ensure!(
        expire_at <= tidings_protocol::now_ms(),
        "relays stopped before the statuses expired"
    );
    report.wall_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The run on a started cluster; the report and when the last status expires.
async fn run_on(
    work: &Path,
    cluster: &Cluster,
    params: Params,
) -> anyhow::Result<(StatusReport, u64)> {
    let clients = users::register_all(&work.join("users"), params.users, cluster).await?;
    introduce_all(&clients)?;
    // Everyone's device list and Olm keys must be at their relay before the first post.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let clock = StatusClock::system();
    let plan = draw(params.users, params.posts, params.seed);
    let mut posted: Vec<(EnvelopeId, &Planned)> = Vec::new();
    let mut expire_at = 0;
    for planned in &plan {
        let post = clients[planned.from]
            .post_status_for(
                &clock,
                &planned.text,
                &planned.audience,
                params.lifetime_secs * 1000,
            )
            .await
            .with_context(|| format!("u{} posting", planned.from))?;
        expire_at = expire_at.max(post.expires_at_ms);
        posted.push((post.id, planned));
    }
    let owed: usize = posted.iter().map(|(_, p)| p.members.len()).sum();
    let mut report = StatusReport {
        scenario: "status",
        relays: params.relays,
        users: params.users,
        posts: posted.len(),
        owed,
        seed: params.seed,
        ..StatusReport::default()
    };

    let deadline = Instant::now() + VIEW_DEADLINE;
    let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(); params.users];
    let mut fetched: Vec<BTreeSet<EnvelopeId>> = vec![BTreeSet::new(); params.users];
    loop {
        for (index, client) in clients.iter().enumerate() {
            look(
                client,
                &clock,
                params.users,
                index,
                &mut seen[index],
                &mut fetched[index],
            )
            .await?;
        }
        let views = count_views(&posted, &seen);
        if views == owed || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    report.views = count_views(&posted, &seen);
    report.lost = owed - report.views;
    for (id, planned) in &posted {
        for user in (0..params.users).filter(|user| *user != planned.from) {
            let outside = !planned.members.contains(&user);
            if outside && (seen[user].contains(&planned.text) || fetched[user].contains(id)) {
                report.leaked += 1;
            }
        }
    }

    // Past the last expiry and one sweep: clients show nothing, relays hold nothing.
    let wait_until = expire_at + (SWEEP_INTERVAL_SECS + 2) * 1000;
    let now = tidings_protocol::now_ms();
    tokio::time::sleep(Duration::from_millis(wait_until.saturating_sub(now))).await;
    for client in &clients {
        report.expired_still_shown += client.status_overview(&clock).await?.len();
        report.expired_still_shown += client.store().received_statuses(0)?.len();
    }
    Ok((report, expire_at))
}

fn count_views(posted: &[(EnvelopeId, &Planned)], seen: &[BTreeSet<String>]) -> usize {
    posted
        .iter()
        .map(|(_, planned)| {
            planned
                .members
                .iter()
                .filter(|user| seen[**user].contains(&planned.text))
                .count()
        })
        .sum()
}

/// What user `index` can see now: the ids their relay hands them, and the texts of every
/// poster's statuses they view.
async fn look(
    client: &Client,
    clock: &StatusClock,
    users: usize,
    index: usize,
    seen: &mut BTreeSet<String>,
    fetched: &mut BTreeSet<EnvelopeId>,
) -> anyhow::Result<()> {
    let session = users::connect(client).await;
    let items = session.fetch_status_items(0).await;
    session.close().await;
    fetched.extend(items?.into_iter().map(|item| item.id));
    for poster in (0..users).filter(|poster| *poster != index) {
        for status in client.view_statuses(clock, &name(poster)).await? {
            seen.insert(status.text);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_never_empty_and_never_the_poster() {
        let plan = draw(5, 200, 3);
        for planned in &plan {
            assert!(!planned.members.is_empty());
            assert!(!planned.members.contains(&planned.from));
        }
        assert!(
            plan.iter()
                .any(|p| matches!(p.audience, Audience::Except(_)))
        );
        assert!(plan.iter().any(|p| matches!(p.audience, Audience::Only(_))));
    }
}
