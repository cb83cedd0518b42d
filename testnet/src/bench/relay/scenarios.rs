//! The four scenarios of `bench relay`: throughput, rate, offline (push, then drain) and
//! idle, each against real relay processes.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use libp2p::Multiaddr;
use tidings_protocol::{client::ClientFrame, client::Request, framing};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    MAX_SECS, Params, Quantiles, RelayReport, Scenario,
    device::{RawDevice, heartbeat},
    load::{self, Pace, ReceiverTally, SenderTally},
    procstat::Usage,
    world::{Pairs, register_all},
};
use crate::{bench::rss::rss_kib, cluster::Cluster};

/// How long deliveries may pause, once the senders stopped, before the rest counts as lost.
const DELIVERY_STALL: Duration = Duration::from_secs(10);
/// How long receivers get to notice they went offline before the push starts.
const OFFLINE_SETTLE: Duration = Duration::from_millis(300);
/// How long a restarted relay gets before its memory is read.
const RESTART_SETTLE: Duration = Duration::from_secs(1);
/// How long all idle devices may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections one idle device tries (the relay refuses handshakes beyond its
/// `max_pending_connections`) before it counts as not connected.
const MAX_CONNECT_ATTEMPTS: u32 = 8;
/// Pause before an idle device dials again, times the attempts so far.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// `total` split over `parts` as evenly as it goes.
fn split(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|part| total / parts + usize::from(part < total % parts))
        .collect()
}

/// Senders' and receivers' home addresses: the first relay and the last.
fn homes(cluster: &Cluster) -> anyhow::Result<(Multiaddr, Multiaddr)> {
    let first = cluster.relays.first().context("no relay")?;
    let last = cluster.relays.last().context("no relay")?;
    Ok((first.addr.clone(), last.addr.clone()))
}

fn base(params: &Params) -> RelayReport {
    RelayReport {
        bench: "relay",
        scenario: Some(params.scenario),
        relays: params.relays,
        pairs: params.pairs,
        ..RelayReport::default()
    }
}

/// What the senders did, summed.
struct Sent {
    accepted: usize,
    refused: usize,
    first_refusal: Option<String>,
    ack_ms: Vec<f64>,
    last_answer: Option<tokio::time::Instant>,
    /// Whether a sender wrote all its frames before the deadline.
    exhausted: bool,
}

fn sum_senders(pairs: &Pairs, tallies: Vec<SenderTally>, deadline: tokio::time::Instant) -> Sent {
    let mut sent = Sent {
        accepted: 0,
        refused: 0,
        first_refusal: None,
        ack_ms: Vec::new(),
        last_answer: None,
        exhausted: false,
    };
    for (index, tally) in tallies.into_iter().enumerate() {
        let pool = pairs.frames[index].len() - 1;
        sent.exhausted |=
            tally.written == pool && tally.last_answer.is_some_and(|at| at < deadline);
        sent.accepted += tally.accepted;
        sent.refused += tally.refused;
        sent.first_refusal = sent.first_refusal.or(tally.first_refusal);
        sent.ack_ms.extend(tally.ack_ms);
        sent.last_answer = sent.last_answer.max(tally.last_answer);
    }
    sent
}

/// Fills the delivery side of `report` from the receivers' tallies.
fn sum_receivers(
    report: &mut RelayReport,
    tallies: Vec<ReceiverTally>,
) -> Option<tokio::time::Instant> {
    let mut latencies = Vec::new();
    let mut last = None;
    for tally in tallies {
        report.delivered += tally.delivered;
        report.duplicates += tally.duplicates + tally.foreign;
        latencies.extend(tally.latency_ms);
        last = last.max(tally.last_delivery);
    }
    report.lost = report.sent.saturating_sub(report.delivered);
    report.latency_ms = Some(Quantiles::of(latencies));
    last
}

fn per_s(count: usize, from: tokio::time::Instant, to: Option<tokio::time::Instant>) -> (f64, f64) {
    let seconds = to.map(|to| (to - from).as_secs_f64()).unwrap_or_default();
    let rate = if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    };
    (seconds, rate)
}

/// Warms the pairs up, then sends at `pace` (given the start and a sender's index) for
/// `secs`, waits for what the relays accepted to arrive (or stall), and fills `report`'s
/// sending and delivery sides; also whether a sender used up its frames.
async fn timed(
    cluster: &Cluster,
    pairs: Pairs,
    secs: u64,
    pace: impl Fn(tokio::time::Instant, usize) -> Pace,
    mut report: RelayReport,
) -> anyhow::Result<(RelayReport, bool)> {
    let receiving = pairs.receive().await?;
    let links = pairs.warm_up(&receiving).await?;

    let usage = Usage::start(cluster)?;
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let done = pairs
        .send(links, |index| pace(start, index), deadline)
        .await?;
    let sent = sum_senders(
        &pairs,
        done.into_iter().map(|(_, tally)| tally).collect(),
        deadline,
    );
    load::wait_for(&receiving.delivered, sent.accepted, DELIVERY_STALL).await;
    let relay_usage = usage.finish()?;
    let tallies = receiving.finish().await?;

    report.sent = sent.accepted;
    report.refused = sent.refused;
    report.first_refusal = sent.first_refusal;
    report.ack_ms = Some(Quantiles::of(sent.ack_ms));
    report.relay_usage = relay_usage;
    report.prebuild_s = pairs.prebuild_s;
    let last = sum_receivers(&mut report, tallies);
    (report.elapsed_s, report.delivered_per_s) = per_s(report.delivered, start, last);
    report.accepted_per_s = per_s(report.sent, start, sent.last_answer).1;
    Ok((report, sent.exhausted))
}

/// `params.runs` throughput or rate runs back to back against the same relays, each with
/// new pairs; a report per run, with the relays' store sizes when there are several.
pub async fn timed_runs(work: &Path, params: &Params) -> anyhow::Result<Vec<RelayReport>> {
    let cluster = Cluster::start_unthrottled(work, params.relays).await?;
    let mut reports = Vec::with_capacity(params.runs);
    let mut accepted_total = 0;
    for run in 1..=params.runs {
        let mut report = match params.scenario {
            Scenario::Rate => rate(&cluster, params).await?,
            _ => throughput(&cluster, params).await?,
        };
        // The warm-up envelope of each pair passed the relays too.
        accepted_total += report.sent + params.pairs;
        if params.runs > 1 {
            report.run = Some(run);
            report.accepted_total = Some(accepted_total);
            report.relay_db_bytes = Some(store_sizes(&cluster)?);
            tracing::info!(
                run,
                delivered_per_s = report.delivered_per_s,
                accepted_total,
                relay_db_bytes = ?report.relay_db_bytes,
                "bench relay run done"
            );
        }
        reports.push(report);
    }
    cluster.stop().await?;
    Ok(reports)
}

/// Each relay's `relay.redb` size, bytes.
fn store_sizes(cluster: &Cluster) -> anyhow::Result<Vec<u64>> {
    cluster
        .relays
        .iter()
        .map(|relay| {
            let path = relay.data_dir().join(tidings_relay::STORE_FILE);
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("reading the size of {}", path.display()))?;
            Ok(meta.len())
        })
        .collect()
}

/// Pairs with a window in flight each for `secs`.
async fn throughput(cluster: &Cluster, params: &Params) -> anyhow::Result<RelayReport> {
    let (senders_home, receivers_home) = homes(cluster)?;
    let counts = split(params.max_messages, params.pairs);
    let pairs = Pairs::make(&senders_home, &receivers_home, &counts, params.body_bytes).await?;
    let report = RelayReport {
        window: Some(params.window),
        ..base(params)
    };
    let pace = |_, _| Pace::Window(params.window);
    let (mut report, exhausted) = timed(cluster, pairs, params.secs, pace, report).await?;
    report.exhausted = exhausted;
    Ok(report)
}

/// A fixed rate in bursts, each burst from the next sender in turn.
async fn rate(cluster: &Cluster, params: &Params) -> anyhow::Result<RelayReport> {
    let (senders_home, receivers_home) = homes(cluster)?;
    let total = params.rate * params.secs;
    let per_burst = (params.pairs * params.burst) as u64;
    let bursts = total.div_ceil(per_burst) as usize;
    let counts = vec![bursts * params.burst; params.pairs];
    let pairs = Pairs::make(&senders_home, &receivers_home, &counts, params.body_bytes).await?;
    let gap = params.burst as f64 / params.rate as f64;
    let every = Duration::from_secs_f64(gap * params.pairs as f64);
    let pace = |start: tokio::time::Instant, index: usize| Pace::Bursts {
        first: start + Duration::from_secs_f64(gap * index as f64),
        every,
        burst: params.burst,
    };
    let report = RelayReport {
        rate: Some(params.rate),
        burst: Some(params.burst),
        ..base(params)
    };
    Ok(timed(cluster, pairs, params.secs, pace, report).await?.0)
}

/// Receivers offline while the senders push `messages`; then they connect and drain.
pub async fn offline(work: &Path, params: &Params) -> anyhow::Result<RelayReport> {
    let cluster = Cluster::start_unthrottled(work, params.relays).await?;
    let (senders_home, receivers_home) = homes(&cluster)?;
    let counts = split(params.messages, params.pairs);
    let pairs = Pairs::make(&senders_home, &receivers_home, &counts, params.body_bytes).await?;
    // Online for the warm-up only (home lookups and relay links made before timing).
    let receiving = pairs.receive().await?;
    let links = pairs.warm_up(&receiving).await?;
    receiving.finish().await?;
    tokio::time::sleep(OFFLINE_SETTLE).await;

    let usage = Usage::start(&cluster)?;
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(MAX_SECS);
    let done = pairs
        .send(links, |_| Pace::Window(params.window), deadline)
        .await?;
    let relay_usage = usage.finish()?;
    let sent = sum_senders(
        &pairs,
        done.into_iter().map(|(_, tally)| tally).collect(),
        deadline,
    );

    let usage = Usage::start(&cluster)?;
    let drain_start = tokio::time::Instant::now();
    let receiving = pairs.receive().await?;
    load::wait_for(&receiving.delivered, sent.accepted, DELIVERY_STALL).await;
    let drain_usage = usage.finish()?;
    let tallies = receiving.finish().await?;
    cluster.stop().await?;

    let mut report = RelayReport {
        window: Some(params.window),
        sent: sent.accepted,
        refused: sent.refused,
        first_refusal: sent.first_refusal,
        ack_ms: Some(Quantiles::of(sent.ack_ms)),
        relay_usage,
        drain_relay_usage: Some(drain_usage),
        prebuild_s: pairs.prebuild_s,
        ..base(params)
    };
    let last = sum_receivers(&mut report, tallies);
    // Time spent offline, not a latency of the relay.
    report.latency_ms = None;
    (report.elapsed_s, report.accepted_per_s) = per_s(report.sent, start, sent.last_answer);
    let (drain_s, drain_per_s) = per_s(report.delivered, drain_start, last);
    report.drain_s = Some(drain_s);
    report.drain_per_s = Some(drain_per_s);
    report.delivered_per_s = drain_per_s;
    Ok(report)
}

/// Devices connect to the first relay all at once and stay idle.
pub async fn idle(work: &Path, params: &Params) -> anyhow::Result<RelayReport> {
    let mut cluster = Cluster::start_unthrottled(work, params.relays).await?;
    let (home, _) = homes(&cluster)?;
    let devices: Vec<_> = (0..params.devices)
        .map(|_| Arc::new(RawDevice::new(home.clone())))
        .collect();
    register_all(&devices).await?;
    // A fresh process: the registrations' caches and buffers are not counted.
    let relay = cluster.relays.first_mut().context("no relay")?;
    relay.stop().await?;
    relay.restart().await?;
    tokio::time::sleep(RESTART_SETTLE).await;
    let rss_before = rss_kib(relay.pid())?;

    let usage = Usage::start(&cluster)?;
    let started = Instant::now();
    let stop = CancellationToken::new();
    let (connected_tx, mut connected_rx) = mpsc::channel(params.devices);
    let mut tasks = JoinSet::new();
    for device in devices {
        let (stop, connected) = (stop.clone(), connected_tx.clone());
        tasks.spawn(async move {
            let mut refused = 0;
            let opened = loop {
                match device.open(Request::Subscribe).await {
                    Ok(opened) => break opened,
                    Err(error) if refused + 1 >= MAX_CONNECT_ATTEMPTS => {
                        let _ = connected.send(Err(error.to_string())).await;
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "an idle device's connection failed; dialling again");
                        refused += 1;
                        tokio::time::sleep(RECONNECT_PAUSE * refused).await;
                    }
                }
            };
            let mut link = opened.link;
            let _ = connected.send(Ok((opened.dropped_streams, refused))).await;
            let Ok(every) = heartbeat(&opened.answer) else { return };
            let mut ping = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ping.tick() => {
                        if framing::write_frame(&mut link.writer, &ClientFrame::Ping).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(connected_tx);
    let (mut connected, mut dropped, mut refused, mut failures) = (0, 0u64, 0u64, Vec::new());
    let give_up = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    while connected + failures.len() < params.devices {
        match tokio::time::timeout_at(give_up, connected_rx.recv()).await {
            Ok(Some(Ok((streams, connections)))) => {
                connected += 1;
                dropped += u64::from(streams);
                refused += u64::from(connections);
            }
            Ok(Some(Err(error))) => failures.push(error),
            Ok(None) | Err(_) => break,
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(params.idle_secs)).await;
    let rss_after = rss_kib(cluster.relays[0].pid())?;
    let relay_usage = usage.finish()?;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    cluster.stop().await?;
    if let Some(error) = failures.first() {
        tracing::warn!(failed = failures.len(), %error, "idle devices that did not connect");
    }
    Ok(RelayReport {
        pairs: 0,
        devices: Some(params.devices),
        connected: Some(connected),
        first_streams_failed: Some(dropped),
        connections_failed: Some(refused),
        rss_per_device_kib: Some(
            rss_after.saturating_sub(rss_before) as f64 / connected.max(1) as f64,
        ),
        connect_s: Some(connect_s),
        relay_usage,
        ..base(params)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_evenly_over_senders() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(8, 2).iter().sum::<usize>(), 8);
    }
}
