//! `bench dht`: relays in this process forming one Kademlia DHT on loopback; users register on random relays (publishing their home records), then random other relays look each one up.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tidings_protocol::UserId;
use tidings_relay::{RunningRelay, testing::Network};

use super::{raise_open_files_limit, register_many};
use crate::report::{Outcome, Percentiles};

/// Peers a routing table is expected to hold once the DHT formed: every other relay, or
/// one full Kademlia bucket's worth (k = 20) in a larger network.
const ROUTING_TARGET: usize = 20;
/// How long the relays get to fill their routing tables.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the published records get to reach the relays that keep them.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Relays a home record is replicated to besides its home: libp2p-kad's default
/// replication factor (k = 20), or every other relay in a smaller network.
const REPLICATION: usize = 20;
/// How long one lookup may take (the relay's own DHT query timeout is 10 s).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relays in this process, over real loopback sockets (past 20, k = 20 replication no
    /// longer puts every record on every relay).
    #[arg(long, default_value_t = 50)]
    pub relays: usize,
    /// Users (home records), each registered on a random relay, each looked up once per pass.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Seed of the random choices of relays.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct DhtReport {
    /// Bench name.
    pub bench: &'static str,
    /// Relays in the DHT.
    pub relays: usize,
    /// Users registered (home records published).
    pub users: usize,
    /// Smallest routing table among the relays when the lookups began.
    pub routing_peers_min: usize,
    /// Home records the relays had stored (validated copies, summed) when the lookups began.
    pub records_stored: u64,
    /// Copies a complete publication makes: users x (1 + replicas, k = 20 or every other relay).
    pub records_expected: u64,
    /// Lookups made: each user's record twice (two passes), each time from a random relay
    /// other than its home.
    pub lookups: usize,
    /// Lookups that returned the user's record naming its home relay.
    pub found: usize,
    /// Lookups that returned nothing, or a record naming another relay.
    pub failed: usize,
    /// First pass: lookups the asking relay answered from its own store (the record had
    /// been replicated to it), with no request sent: the query ends at the first valid record.
    pub held_locally: usize,
    /// First pass: from asking a relay for the record until it answered: the Kademlia query
    /// until the first valid record (where the relay finishes it), for which the asking relay
    /// often has to open connections first.
    pub latency_ms: Percentiles,
    /// Second pass: the same, for each record again from another random relay, once the
    /// first pass has opened many connections between relays.
    pub repeat_latency_ms: Percentiles,
    /// First pass: time within the query until the first valid record (0 when held
    /// locally), per libp2p-kad's `QueryStats::duration` at that step.
    pub first_record_ms: Percentiles,
    /// First pass: requests the query sent to other relays before it answered (libp2p-kad
    /// `QueryStats::num_requests`): relays asked per lookup, not sequential hops.
    pub requests_per_lookup: Percentiles,
    /// First pass: requests sent by the time the first valid record arrived
    /// (`QueryStats::num_requests` at that step; 0 when held locally). kad asks 3 relays at
    /// a time, so 3 means the first round of requests brought the record.
    pub requests_to_first_record: Percentiles,
    /// Forming the DHT and publishing the records, seconds (not part of the figures).
    pub setup_s: f64,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
    /// Seed of the random choices.
    pub seed: u64,
}

impl DhtReport {
    /// Whether every lookup found the right home relay.
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.found == self.lookups
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        let counts = |p: &Percentiles| format!("p50 {}, p99 {}, max {}", p.p50, p.p99, p.max);
        println!(
            "dht: {} relays (smallest routing table {}), {} home records, {} lookups (two passes) from random relays: {} found, {} failed",
            self.relays, self.routing_peers_min, self.users, self.lookups, self.found, self.failed
        );
        println!(
            "  {} of {} record copies stored before the lookups",
            self.records_stored, self.records_expected
        );
        println!(
            "  lookup latency (until the first valid record), first pass: {}",
            self.latency_ms
        );
        println!(
            "  again from other relays, connections up:  {}",
            self.repeat_latency_ms
        );
        println!(
            "  first pass, until the first valid record: {} ({} of {} held it already)",
            self.first_record_ms,
            self.held_locally,
            self.lookups / 2
        );
        println!(
            "  first pass, relays asked per lookup (kad requests until the answer): {}",
            counts(&self.requests_per_lookup)
        );
        println!(
            "  first pass, requests sent when the first valid record came (kad asks 3 at a time): {}",
            counts(&self.requests_to_first_record)
        );
        println!(
            "  setup {:.1} s; wall {:.1} s; seed {}",
            self.setup_s, self.wall_s, self.seed
        );
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

/// Runs the bench in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<DhtReport> {
    ensure!((2..=500).contains(&params.relays), "2 to 500 relays");
    ensure!((1..=10_000).contains(&params.users), "1 to 10,000 users");
    let started = Instant::now();
    raise_open_files_limit()?;
    let network = Network::start_in(work, params.relays, |_| {}).await?;
    tracing::info!(elapsed = ?started.elapsed(), "relays started");
    let outcome = measure(work, &network, params, started).await;
    network.shutdown().await;
    outcome
}

/// Registers the users, waits for their records to spread, and looks each one up.
async fn measure(
    work: &Path,
    network: &Network,
    params: Params,
    started: Instant,
) -> anyhow::Result<DhtReport> {
    let routing_peers_min = form(network).await;
    let relays: Vec<&RunningRelay> = network.running().collect();
    tracing::info!(elapsed = ?started.elapsed(), routing_peers_min, "DHT formed");
    let mut rng = StdRng::seed_from_u64(params.seed);
    let homes: Vec<usize> = (0..params.users)
        .map(|_| rng.random_range(0..relays.len()))
        .collect();
    let mut addresses = Vec::with_capacity(homes.len());
    for home in &homes {
        let Some(address) = relays[*home].tcp_dial_addr() else {
            anyhow::bail!("a relay has no TCP address");
        };
        addresses.push(address);
    }
    let clients = register_many(&work.join("users"), addresses).await?;
    let users: Vec<_> = clients.iter().map(|client| client.user_id()).collect();
    // Each client's store syncs as it closes: off the runtime the relays run on.
    tokio::task::spawn_blocking(move || drop(clients)).await?;
    tracing::info!(elapsed = ?started.elapsed(), "users registered");
    let expected = params.users * (1 + REPLICATION.min(relays.len() - 1));
    let records_stored = settle_publishing(&relays, expected as u64).await;
    let setup_s = started.elapsed().as_secs_f64();

    // Each record twice: first from relays that often must open connections to the relays
    // they ask, then again from other random relays once many connections are up.
    let mut first = Samples::default();
    let mut repeat = Samples::default();
    for samples in [&mut first, &mut repeat] {
        for (user, home) in users.iter().zip(&homes) {
            // A random relay other than the home, which holds the record for sure.
            let asker = (home + rng.random_range(1..relays.len())) % relays.len();
            samples.lookup(relays[asker], relays[*home], *user).await;
        }
    }
    let found = first.latency.len() + repeat.latency.len();
    Ok(DhtReport {
        bench: "dht",
        relays: params.relays,
        users: params.users,
        routing_peers_min,
        records_stored,
        records_expected: expected as u64,
        lookups: params.users * 2,
        found,
        failed: first.failed + repeat.failed,
        held_locally: first.held_locally,
        latency_ms: Percentiles::of(first.latency),
        repeat_latency_ms: Percentiles::of(repeat.latency),
        first_record_ms: Percentiles::of(first.first_record),
        requests_per_lookup: Percentiles::of(first.requests),
        requests_to_first_record: Percentiles::of(first.requests_to_first),
        setup_s,
        wall_s: started.elapsed().as_secs_f64(),
        seed: params.seed,
    })
}

/// What one pass of lookups measured.
#[derive(Default)]
struct Samples {
    latency: Vec<f64>,
    first_record: Vec<f64>,
    requests: Vec<f64>,
    requests_to_first: Vec<f64>,
    held_locally: usize,
    failed: usize,
}

impl Samples {
    /// Asks `asker` for `user`'s home record and notes what it cost, or that it failed (no
    /// answer in time, or no record naming `home`).
    async fn lookup(&mut self, asker: &RunningRelay, home: &RunningRelay, user: UserId) {
        let asked = Instant::now();
        let answer = tokio::time::timeout(LOOKUP_TIMEOUT, asker.lookup_home_with_stats(user)).await;
        let latency = asked.elapsed().as_secs_f64() * 1000.0;
        let home = home.peer_id().to_string();
        match answer {
            Ok((Some(record), stats)) if record.user == user && record.relay == home => {
                tracing::debug!(%user, latency, ?stats, "lookup");
                self.latency.push(latency);
                self.requests.push(f64::from(stats.requests));
                let first_requests = stats.requests_to_first_record.unwrap_or_default();
                if first_requests == 0 {
                    self.held_locally += 1;
                }
                self.requests_to_first.push(f64::from(first_requests));
                let first = stats.time_to_first_record.unwrap_or_default();
                self.first_record.push(first.as_secs_f64() * 1000.0);
            }
            Ok((record, stats)) => {
                tracing::warn!(%user, latency, ?stats, ?record, "lookup found no record naming the home relay");
                self.failed += 1;
            }
            Err(_) => {
                tracing::warn!(%user, latency, "lookup timed out");
                self.failed += 1;
            }
        }
    }
}

/// Waits (bounded) until every routing table holds every other relay or a full bucket;
/// returns the smallest routing table then.
async fn form(network: &Network) -> usize {
    let target = ROUTING_TARGET.min(network.running().count().saturating_sub(1));
    if let Err(error) = network.wait_for_dht(target, FORM_TIMEOUT).await {
        tracing::warn!(%error, "measuring with the routing tables as they are");
    }
    network.smallest_routing_table().await
}

/// Waits (bounded) until the relays have stored `expected` copies of home records: the
/// puts have spread. Returns the copies stored.
async fn settle_publishing(relays: &[&RunningRelay], expected: u64) -> u64 {
    let stored = || {
        relays
            .iter()
            .map(|relay| relay.dht_stats().stored())
            .sum::<u64>()
    };
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    while stored() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stored()
}

impl Outcome for DhtReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some("a home-record lookup failed")
    }
}
