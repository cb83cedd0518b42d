//! `bench relay`: load on relay processes from raw devices that speak the client protocol
//! frame by frame (pre-signed envelopes, receivers that ack without decrypting or storing),
//! so the figures are the relay's, not the clients'.

mod device;
mod frames;
mod load;
mod procstat;
mod scenarios;
mod world;

use std::path::{Path, PathBuf};

use anyhow::ensure;
use serde::Serialize;

use crate::report::Outcome;
pub use procstat::RelayUsage;

/// Most pairs in a run.
const MAX_PAIRS: usize = 1024;
/// Largest window (the relay itself reads at most 64 requests of a stream ahead).
const MAX_WINDOW: usize = 1024;
/// Longest timed part, seconds.
const MAX_SECS: u64 = 600;
/// Highest fixed rate, messages per second.
const MAX_RATE: u64 = 1_000_000;
/// Largest burst.
const MAX_BURST: usize = 1024;
/// Most envelopes signed before a run (they are held in memory, ~300 bytes each).
const MAX_MESSAGES: usize = 2_000_000;
/// Most idle devices.
const MAX_DEVICES: usize = 20_000;
/// Largest envelope body.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most timed runs against one relay process.
const MAX_RUNS: usize = 1000;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Pairs keep a window of envelopes in flight for a while: delivered and accepted
    /// msg/s, and the relay's answer latency.
    Throughput,
    /// A fixed send rate in bursts: send-to-delivered latency.
    Rate,
    /// Receivers offline while senders push their envelopes, then they connect and drain.
    Offline,
    /// Devices connect at once and stay idle: relay memory per device, dropped streams.
    Idle,
}

/// Size and shape of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Throughput)]
    pub scenario: Scenario,
    /// Relay processes: 1, or 2 (senders homed on the first, receivers on the second).
    #[arg(long, default_value_t = 1)]
    pub relays: usize,
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 8)]
    pub pairs: usize,
    /// Envelopes each sender keeps in flight (sent, not yet answered by the relay).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Seconds of sending (throughput, rate).
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Envelopes per second over all senders (rate).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Envelopes per burst (rate; 1 spreads them evenly).
    #[arg(long, default_value_t = 50)]
    pub burst: usize,
    /// Envelopes pushed while the receivers are offline (offline).
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Devices connecting at once (idle).
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Seconds the idle devices stay connected before the relay's memory is read.
    #[arg(long, default_value_t = 2)]
    pub idle_secs: u64,
    /// Envelopes signed beforehand for a throughput run, over all senders; a sender that
    /// used all of its share stops early.
    #[arg(long, default_value_t = 600_000)]
    pub max_messages: usize,
    /// Bytes of (ciphertext-looking) body per envelope.
    #[arg(long, default_value_t = 32)]
    pub body_bytes: usize,
    /// Timed runs back to back against the same relay processes and data (throughput,
    /// rate), each with new pairs and envelopes; one report per run, with the store's size.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Put the relays' data dirs here (`DIR/relayN`) and keep them; a temporary directory
    /// otherwise.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl Params {
    fn check(&self) -> anyhow::Result<()> {
        ensure!((1..=2).contains(&self.relays), "1 or 2 relays");
        ensure!(
            (1..=MAX_PAIRS).contains(&self.pairs),
            "1 to {MAX_PAIRS} pairs"
        );
        ensure!(
            (1..=MAX_WINDOW).contains(&self.window),
            "a window of 1 to {MAX_WINDOW}"
        );
        ensure!(
            (1..=MAX_SECS).contains(&self.secs),
            "1 to {MAX_SECS} seconds"
        );
        ensure!(
            (1..=MAX_RATE).contains(&self.rate),
            "a rate of 1 to {MAX_RATE} msg/s"
        );
        ensure!(
            (1..=MAX_BURST).contains(&self.burst),
            "bursts of 1 to {MAX_BURST}"
        );
        ensure!(
            self.rate.saturating_mul(self.secs) <= MAX_MESSAGES as u64,
            "at most {MAX_MESSAGES} envelopes at the asked rate and time"
        );
        ensure!(
            (1..=MAX_MESSAGES).contains(&self.messages)
                && (self.pairs..=MAX_MESSAGES).contains(&self.max_messages),
            "1 to {MAX_MESSAGES} messages, at least one per pair"
        );
        ensure!(
            (1..=MAX_DEVICES).contains(&self.devices),
            "1 to {MAX_DEVICES} devices"
        );
        ensure!(
            self.idle_secs <= MAX_SECS,
            "at most {MAX_SECS} idle seconds"
        );
        ensure!(
            self.body_bytes <= MAX_BODY_BYTES,
            "a body of at most {MAX_BODY_BYTES} bytes"
        );
        ensure!((1..=MAX_RUNS).contains(&self.runs), "1 to {MAX_RUNS} runs");
        ensure!(
            self.runs == 1 || matches!(self.scenario, Scenario::Throughput | Scenario::Rate),
            "several runs only of the throughput and rate scenarios"
        );
        Ok(())
    }
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Quantiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Quantiles {
    /// Percentiles of `samples`; zeros when there are none.
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let last = samples.len() - 1;
        let at = |q: f64| samples[((last as f64 * q).round() as usize).min(last)];
        Self {
            count: samples.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[last],
        }
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

/// What a run measured. Fields a scenario does not measure are left out of the JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RelayReport {
    /// Bench name ("relay").
    pub bench: &'static str,
    /// The scenario.
    pub scenario: Option<Scenario>,
    /// Which of several runs against the same relays this is (from 1; --runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<usize>,
    /// Envelopes accepted by the relays since they started, this run's included (--runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_total: Option<usize>,
    /// Each relay's `relay.redb` size after the run, bytes (--runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_db_bytes: Option<Vec<u64>>,
    /// Relay processes.
    pub relays: usize,
    /// Sender/receiver pairs (0 for idle).
    pub pairs: usize,
    /// Envelopes in flight per sender (throughput, offline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Asked rate and burst (rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// Envelopes per burst (rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<usize>,
    /// Envelopes the relay accepted.
    pub sent: usize,
    /// Envelopes it answered otherwise.
    pub refused: usize,
    /// The first refusal, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_refusal: Option<String>,
    /// Accepted envelopes the receivers got (each once).
    pub delivered: usize,
    /// Accepted envelopes that never arrived.
    pub lost: usize,
    /// Envelopes delivered more than once.
    pub duplicates: usize,
    /// Seconds from the first send to the last delivery (or the last answer).
    pub elapsed_s: f64,
    /// Delivered envelopes per second, receiver side.
    pub delivered_per_s: f64,
    /// Accepted envelopes per second, from the first send to the last answer.
    pub accepted_per_s: f64,
    /// From writing a request to reading the relay's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_ms: Option<Quantiles>,
    /// From writing a request to the receiver reading the envelope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Quantiles>,
    /// Seconds from the receivers connecting to the last envelope drained (offline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_s: Option<f64>,
    /// Envelopes drained per second (offline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_per_s: Option<f64>,
    /// The relays over the drain (offline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_relay_usage: Option<Vec<RelayUsage>>,
    /// Devices asked for (idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<usize>,
    /// Devices connected and subscribed (idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<usize>,
    /// New streams the relay closed before answering their first request (idle: each
    /// device opens another).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_streams_failed: Option<u64>,
    /// Connections that failed before their stream opened (the relay refuses handshakes
    /// beyond its `max_pending_connections`); each device dials again (idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_failed: Option<u64>,
    /// (Relay RSS with every device connected - before) / devices, KiB (idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_device_kib: Option<f64>,
    /// Seconds from the first dial to the last subscription (idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_s: Option<f64>,
    /// Each relay over the timed part: CPU (% of one core) and memory.
    pub relay_usage: Vec<RelayUsage>,
    /// Seconds spent signing envelopes beforehand (not timed).
    pub prebuild_s: f64,
    /// Whether a sender ran out of prebuilt envelopes before the time was up.
    pub exhausted: bool,
}

impl RelayReport {
    fn print(&self) {
        let scenario = self.scenario.map(|s| format!("{s:?}").to_lowercase());
        let run = self
            .run
            .map(|run| format!(" run {run}"))
            .unwrap_or_default();
        println!(
            "relay {}{run}: {} relay(s), {} pairs",
            scenario.unwrap_or_default(),
            self.relays,
            self.pairs
        );
        if let (Some(total), Some(sizes)) = (self.accepted_total, &self.relay_db_bytes) {
            let mib: Vec<String> = sizes
                .iter()
                .map(|bytes| format!("{:.1} MiB", *bytes as f64 / (1 << 20) as f64))
                .collect();
            println!(
                "  {total} accepted since the relays started; relay.redb {}",
                mib.join(", ")
            );
        }
        if self.scenario != Some(Scenario::Idle) {
            println!(
                "  {} accepted, {} refused, {} delivered, {} lost, {} duplicated in {:.2} s",
                self.sent, self.refused, self.delivered, self.lost, self.duplicates, self.elapsed_s
            );
            println!(
                "  {:.0} msg/s delivered, {:.0} msg/s accepted{}",
                self.delivered_per_s,
                self.accepted_per_s,
                if self.exhausted {
                    " (a sender ran out of envelopes)"
                } else {
                    ""
                }
            );
        }
        if let Some(refusal) = &self.first_refusal {
            println!("  first refusal: {refusal}");
        }
        if let Some(ack) = &self.ack_ms {
            println!("  relay answer {ack}");
        }
        if let Some(latency) = &self.latency_ms {
            println!("  send to delivered {latency}");
        }
        if let (Some(drain_s), Some(per_s)) = (self.drain_s, self.drain_per_s) {
            println!("  drained in {drain_s:.2} s: {per_s:.0} msg/s");
        }
        if let (Some(devices), Some(connected)) = (self.devices, self.connected) {
            println!(
                "  {connected} of {devices} devices connected in {:.2} s, {} connections and {} first streams failed, {:.1} KiB relay RSS per device",
                self.connect_s.unwrap_or_default(),
                self.connections_failed.unwrap_or_default(),
                self.first_streams_failed.unwrap_or_default(),
                self.rss_per_device_kib.unwrap_or_default()
            );
        }
        let usages = [
            ("", Some(&self.relay_usage)),
            ("drain ", self.drain_relay_usage.as_ref()),
        ];
        for (phase, usage) in usages {
            for relay in usage.into_iter().flatten() {
                println!(
                    "  {phase}relay {}: {:.0}% CPU, RSS {} -> {} KiB",
                    relay.relay, relay.cpu_percent, relay.rss_start_kib, relay.rss_end_kib
                );
            }
        }
    }
}

/// The reports of a bench: one per run.
#[derive(Debug)]
pub struct RelayRuns(pub Vec<RelayReport>);

impl Outcome for RelayRuns {
    /// One JSON object per line (one line for a single run), or one human report per run.
    fn show(&self, json: bool) -> anyhow::Result<()> {
        for report in &self.0 {
            if json {
                println!("{}", serde_json::to_string(report)?);
            } else {
                report.print();
            }
        }
        Ok(())
    }

    fn failure(&self) -> Option<&'static str> {
        self.0.iter().find_map(RelayReport::failure)
    }
}

impl RelayReport {
    fn failure(&self) -> Option<&'static str> {
        if self.lost > 0 || self.duplicates > 0 || self.refused > 0 {
            return Some("the relay refused, lost or duplicated envelopes");
        }
        if let (Some(connected), Some(devices)) = (self.connected, self.devices)
            && connected < devices
        {
            return Some("not every idle device got connected");
        }
        None
    }
}

/// Runs the bench in `work` (the relays in `--data-dir` if given).
pub async fn run(work: &Path, params: Params) -> anyhow::Result<RelayRuns> {
    params.check()?;
    super::raise_open_files_limit()?;
    let work = params
        .data_dir
        .clone()
        .unwrap_or_else(|| work.to_path_buf());
    let work = work.as_path();
    Ok(RelayRuns(match params.scenario {
        Scenario::Throughput | Scenario::Rate => scenarios::timed_runs(work, &params).await?,
        Scenario::Offline => vec![scenarios::offline(work, &params).await?],
        Scenario::Idle => vec![scenarios::idle(work, &params).await?],
    }))
}
