//! `bench connections`: many idle devices, each a real client session subscribed to one relay process: the relay's resident memory per connected device, and the time to connect them all.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use serde::Serialize;
use tidings_client::{Client, Session};
use tokio::{sync::Semaphore, task::JoinSet};

use super::{raise_open_files_limit, register_many, rss::rss_kib};
use crate::{cluster::Cluster, report::Outcome, scenario::users};

/// Devices connecting at the same time.
const CONCURRENCY: usize = 32;
/// How long one device may take to connect and subscribe.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the relay gets after a (re)start before its memory is read.
const SETTLE: Duration = Duration::from_secs(1);
/// Open files one device costs this process (its socket and its store), with room to spare.
const FILES_PER_DEVICE: u64 = 4;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Devices (one user each) connected at once.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Seconds the devices stay connected and idle before the relay's memory is read.
    #[arg(long, default_value_t = 1)]
    pub idle_secs: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    /// Bench name.
    pub bench: &'static str,
    /// Devices asked for.
    pub devices: usize,
    /// Devices that connected and subscribed.
    pub connected: usize,
    /// Relay resident memory (VmRSS) after a restart, every user registered, none connected.
    pub rss_before_kib: u64,
    /// Relay resident memory with every device connected and idle.
    pub rss_after_kib: u64,
    /// (`rss_after_kib` - `rss_before_kib`) / `connected`.
    pub rss_per_connection_kib: f64,
    /// From the first connect to the last subscribed session.
    pub connect_s: f64,
    /// Sessions established per second.
    pub connects_per_s: f64,
    /// Registering every user beforehand (not part of the figures).
    pub register_s: f64,
    /// Seconds connected and idle before the second reading.
    pub idle_secs: u64,
    /// This process's soft open-files limit during the run.
    pub open_files_limit: u64,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
}

impl ConnectionsReport {
    /// Whether every device got its session.
    pub fn passed(&self) -> bool {
        self.connected == self.devices
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "connections: {} of {} idle devices connected and subscribed to one relay in {:.2} s ({:.0}/s)",
            self.connected, self.devices, self.connect_s, self.connects_per_s
        );
        println!(
            "  relay RSS {:.1} MiB before, {:.1} MiB after {} s idle: {:.1} KiB per connection",
            self.rss_before_kib as f64 / 1024.0,
            self.rss_after_kib as f64 / 1024.0,
            self.idle_secs,
            self.rss_per_connection_kib
        );
        println!(
            "  registering them first took {:.1} s; wall {:.1} s",
            self.register_s, self.wall_s
        );
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

/// Runs the bench in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<ConnectionsReport> {
    ensure!(
        (1..=10_000).contains(&params.devices),
        "1 to 10,000 devices"
    );
    ensure!(params.idle_secs <= 600, "at most 600 s idle");
    let started = Instant::now();
    let open_files_limit = raise_open_files_limit()?;
    let needed = params.devices as u64 * FILES_PER_DEVICE + 256;
    ensure!(
        open_files_limit >= needed,
        "{} devices need about {needed} open files; the limit is {open_files_limit}",
        params.devices
    );
    let mut cluster = Cluster::start_with(work, 1, |config| {
        config.limits.max_sessions = config.limits.max_sessions.max(params.devices * 2);
    })
    .await?;
    let registering = Instant::now();
    let home = cluster.relays[0].addr.clone();
    let clients = register_many(&work.join("devices"), vec![home; params.devices]).await?;
    let register_s = registering.elapsed().as_secs_f64();

    // A fresh relay process holding every user and no connection: the baseline.
    let relay = &mut cluster.relays[0];
    relay.stop().await?;
    relay.restart().await?;
    tokio::time::sleep(SETTLE).await;
    let rss_before_kib = rss_kib(relay.pid())?;

    let connecting = Instant::now();
    let sessions = connect_all(&clients).await?;
    let connect_s = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(params.idle_secs)).await;
    let rss_after_kib = rss_kib(cluster.relays[0].pid())?;
    let connected = sessions.len();

    let mut closing = JoinSet::new();
    for session in sessions {
        closing.spawn(session.close());
    }
    while closing.join_next().await.is_some() {}
    cluster.stop().await?;
    // Each client's store syncs as it closes: off the runtime, and inside the wall time.
    tokio::task::spawn_blocking(move || drop(clients)).await?;
    Ok(ConnectionsReport {
        bench: "connections",
        devices: params.devices,
        connected,
        rss_before_kib,
        rss_after_kib,
        rss_per_connection_kib: rss_after_kib.saturating_sub(rss_before_kib) as f64
            / connected.max(1) as f64,
        connect_s,
        connects_per_s: connected as f64 / connect_s,
        register_s,
        idle_secs: params.idle_secs,
        open_files_limit,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Connects and subscribes every client, a few at a time; returns the open sessions.
async fn connect_all(clients: &[Client]) -> anyhow::Result<Vec<Session>> {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for client in clients {
        let client = client.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            tokio::time::timeout(DEVICE_TIMEOUT, async {
                let mut session = users::connect(&client).await;
                session.subscribe().await?;
                anyhow::Ok(session)
            })
            .await
            .context("connecting timed out")?
        });
    }
    let mut sessions = Vec::with_capacity(clients.len());
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok(session) => sessions.push(session),
            Err(error) => tracing::warn!(%error, "a device did not connect"),
        }
    }
    Ok(sessions)
}

impl Outcome for ConnectionsReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some("not every device could connect")
    }
}
