//! `scenario media`: random files sent 1:1 and to groups across relay processes, sent again
//! and forwarded; every recipient saves every file and compares it with the original.

mod deliver;
mod plan;

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde::Serialize;
use tidings_client::Client;
use tidings_protocol::{BlobId, EnvelopeId};
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use self::{
    deliver::{Job, Outcome, Owed, Sent},
    plan::{Plan, Target},
};
use super::users::{self, name};
use crate::{
    cluster::Cluster,
    report::{self, Percentiles},
};

/// How long each phase (the sends, then the forwards) waits for its last saves.
const QUIESCENCE_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest file the scenario makes: sealed (a 16-byte tag per 64 KiB), it stays under the
/// relays' default `blobs.max_blob_bytes` of 100 MiB.
const MAX_FILE_BYTES: u64 = 96 << 20;

/// Most files in a run (they all sit on this disk, and at every relay that holds them).
const MAX_FILES: usize = 10_000;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Relay processes (the first starts the DHT, the others join it).
    #[arg(long, default_value_t = 3)]
    pub relays: usize,
    /// Users, homed round-robin on the relays; one group per four users.
    #[arg(long, default_value_t = 8)]
    pub users: usize,
    /// Distinct random files (every fourth is sent twice, every third forwarded).
    #[arg(long, default_value_t = 20)]
    pub files: usize,
    /// Smallest file, in bytes (suffixes K and M: 1024 and 1024²).
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    pub min_size: u64,
    /// Largest file, in bytes (suffixes K and M); sizes are log-uniform in between.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    pub max_size: u64,
    /// Seed of the random workload and the files' bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Parses a byte count with an optional K or M suffix (binary).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'K' | 'k')) => (&text[..at], 1024),
        Some((at, 'M' | 'm')) => (&text[..at], 1024 * 1024),
        _ => (text, 1),
    };
    let count: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size (like 4096, 64K or 20M)"))?;
    count
        .checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// What the run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct MediaReport {
    /// Always "media".
    pub scenario: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Users.
    pub users: usize,
    /// Users offline while the files were sent (back to save them).
    pub offline_users: usize,
    /// Groups.
    pub groups: usize,
    /// Distinct files.
    pub files: usize,
    /// Their plaintext bytes, summed.
    pub file_bytes: u64,
    /// Media messages: first sends, re-sends and forwards.
    pub messages: usize,
    /// Of which re-sends of a file the sender sent before.
    pub resends: usize,
    /// Of which forwards.
    pub forwards: usize,
    /// Messages their sender's relay accepted (✓).
    pub accepted: usize,
    /// Deliveries owed: one per message and recipient.
    pub deliveries: usize,
    /// Deliveries saved with the original's SHA-256.
    pub saved: usize,
    /// Saved files whose SHA-256 differs from the original (or that did not open).
    pub corrupt: usize,
    /// Owed deliveries not saved within the deadline.
    pub lost: usize,
    /// Ciphertext bytes the clients uploaded (re-sends and forwards must add 0).
    pub bytes_uploaded: u64,
    /// Re-sends and forwards that uploaded anything (must be 0).
    pub reuploads: usize,
    /// Per relay, the bytes of the blob files under its `blobs/` (not `blobs/partial/`).
    pub bytes_stored_per_relay: Vec<u64>,
    /// Per relay, its blob files.
    pub blobs_per_relay: Vec<usize>,
    /// Files under a relay's `blobs/` that are not a blob of the run with its size and hash,
    /// plus one per relay whose stored bytes differ from the sum of the distinct blobs it
    /// holds (must be 0).
    pub stray_blobs: usize,
    /// Ciphertext bytes of the saved deliveries / bytes stored over all relays.
    pub dedupe_ratio: f64,
    /// Per intact delivery, how long `save_media` took (download, with the relay's fetch
    /// from another relay if it had to; hash check; decryption).
    pub save_ms: Percentiles,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
    /// Seed of the workload.
    pub seed: u64,
}

impl MediaReport {
    /// Whether every delivery was saved intact, nothing went up twice, and every relay
    /// holds each blob once and nothing else.
    pub fn passed(&self) -> bool {
        self.corrupt == 0
            && self.lost == 0
            && self.saved == self.deliveries
            && self.accepted == self.messages
            && self.reuploads == 0
            && self.stray_blobs == 0
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "media scenario: {} relays, {} users ({} offline while sending), {} groups, {} files ({} bytes), seed {}",
            self.relays,
            self.users,
            self.offline_users,
            self.groups,
            self.files,
            self.file_bytes,
            self.seed
        );
        println!(
            "  messages {} ({} re-sends, {} forwards)  accepted {}",
            self.messages, self.resends, self.forwards, self.accepted
        );
        println!(
            "  deliveries {}  saved {}  corrupt {}  lost {}",
            self.deliveries, self.saved, self.corrupt, self.lost
        );
        println!(
            "  uploaded {} bytes ({} re-sends/forwards uploaded again)",
            self.bytes_uploaded, self.reuploads
        );
        for (index, (bytes, blobs)) in self
            .bytes_stored_per_relay
            .iter()
            .zip(&self.blobs_per_relay)
            .enumerate()
        {
            println!("  relay {}: {blobs} blobs, {bytes} bytes", index + 1);
        }
        println!(
            "  dedupe ratio {:.2} (bytes delivered / bytes stored), stray blob files {}",
            self.dedupe_ratio, self.stray_blobs
        );
        println!("  saving a file: {}", self.save_ms);
        println!("  wall {:.1} s", self.wall_s);
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

impl report::Outcome for MediaReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some(
            "the media scenario found a lost or corrupt file, a second upload, or a relay storing a blob twice",
        )
    }
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<MediaReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(params.users >= 2, "at least two users");
    ensure!(
        params.min_size <= params.max_size,
        "--min-size above --max-size"
    );
    ensure!(
        params.max_size <= MAX_FILE_BYTES,
        "--max-size above {MAX_FILE_BYTES} bytes (sealed, it must fit the relays' default blob limit)"
    );
    ensure!(params.files <= MAX_FILES, "at most {MAX_FILES} files");
    let started = Instant::now();
    let plan = Plan::draw(&params);
    let files_dir = work.join("files");
    let samples = tokio::task::spawn_blocking(move || {
        plan::write_samples(
            &files_dir,
            params.files,
            params.min_size,
            params.max_size,
            params.seed,
        )
    })
    .await??;
    let cluster = Cluster::start(work, params.relays).await?;
    let clients = users::register_all(&work.join("users"), params.users, &cluster).await?;
    users::introduce_all(&clients)?;
    make_groups(&clients, &plan).await?;

    // A quarter of the users are offline while the files are sent (their messages wait at
    // their relays, naming blobs), and come back to save them.
    let offline: Vec<bool> = (0..params.users).map(|index| index % 4 == 3).collect();
    let stop = CancellationToken::new();
    let mut online = Vec::new();
    let mut receivers = JoinSet::new();
    for (client, away) in clients.iter().zip(&offline) {
        let (flag, watcher) = watch::channel(!away);
        online.push(flag);
        receivers.spawn(users::receive(client.clone(), watcher, stop.clone()));
    }

    // Phase 1: the sends and re-sends, then every recipient saves them.
    let mut jobs: HashMap<usize, Vec<Job>> = HashMap::new();
    for send in &plan.sends {
        jobs.entry(send.from).or_default().push(Job::File {
            file: send.file,
            path: samples[send.file].path.clone(),
            target: target_name(send.to),
            recipients: plan.recipients(send.from, send.to),
            again: send.again,
        });
    }
    let first = send_phase(&clients, jobs).await?;
    for flag in &online {
        flag.send_replace(true);
    }
    let saves = work.join("saved");
    let deadline = Instant::now() + QUIESCENCE_TIMEOUT;
    let mut outcomes =
        deliver::save_all(&clients, owed_by(&first), &samples, &saves, deadline).await?;

    // Phase 2: recipients who saved a first send forward it.
    let first_sends: Vec<&Sent> = first.iter().filter(|sent| !sent.reuses).collect();
    let mut jobs: HashMap<usize, Vec<Job>> = HashMap::new();
    for forward in &plan.forwards {
        let Some(sent) = plan_sent(&plan, forward.send, &first_sends) else {
            continue;
        };
        let holders: Vec<usize> = sent
            .recipients
            .iter()
            .copied()
            .filter(|recipient| {
                matches!(
                    outcomes.get(&(sent.id, *recipient)),
                    Some(Outcome::Intact { .. })
                )
            })
            .collect();
        if holders.is_empty() {
            continue;
        }
        let forwarder = holders[forward.pick % holders.len()];
        let to = (forwarder + 1 + forward.to % (params.users - 1)) % params.users;
        jobs.entry(forwarder).or_default().push(Job::Forward {
            id: sent.id,
            file: sent.file,
            target: name(to),
            recipients: vec![to],
        });
    }
    let forwarded = send_phase(&clients, jobs).await?;
    let deadline = Instant::now() + QUIESCENCE_TIMEOUT;
    outcomes.extend(
        deliver::save_all(&clients, owed_by(&forwarded), &samples, &saves, deadline).await?,
    );

    stop.cancel();
    while receivers.join_next().await.is_some() {}
    let all: Vec<Sent> = first.into_iter().chain(forwarded).collect();
    let report = tally(&clients, &cluster, &plan, &all, &outcomes, params, started).await;
    cluster.stop().await?;
    let mut report = report?;
    report.file_bytes = samples.iter().map(|sample| sample.size).sum();
    report.offline_users = offline.iter().filter(|away| **away).count();
    Ok(report)
}

/// The first send `index` of the plan, as sent (if its sender managed to).
fn plan_sent<'a>(plan: &Plan, index: usize, first_sends: &[&'a Sent]) -> Option<&'a Sent> {
    let wanted = plan.sends.get(index)?;
    first_sends
        .iter()
        .copied()
        .find(|sent| sent.file == wanted.file)
}

/// Creates the plan's groups (each by its first member) and waits until every member knows
/// its groups.
async fn make_groups(clients: &[Client], plan: &Plan) -> anyhow::Result<()> {
    for (index, members) in plan.groups.iter().enumerate() {
        let others: Vec<String> = members[1..].iter().map(|member| name(*member)).collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let mut creator = users::connect(&clients[members[0]]).await;
        let group = creator
            .create_group(&target_name(Target::Group(index)), &others)
            .await?;
        creator.close().await;
        for member in &members[1..] {
            users::wait_for_group(&clients[*member], group).await?;
        }
    }
    Ok(())
}

/// The contact or group name of a target.
fn target_name(target: Target) -> String {
    match target {
        Target::User(user) => name(user),
        Target::Group(group) => format!("g{group}"),
    }
}

/// Runs every sender's jobs (senders in parallel); returns what they sent.
async fn send_phase(
    clients: &[Client],
    jobs: HashMap<usize, Vec<Job>>,
) -> anyhow::Result<Vec<Sent>> {
    let mut senders = JoinSet::new();
    for (sender, list) in jobs {
        senders.spawn(deliver::send_all(clients[sender].clone(), sender, list));
    }
    let mut sent = Vec::new();
    while let Some(joined) = senders.join_next().await {
        sent.extend(joined?);
    }
    Ok(sent)
}

/// Per recipient, the deliveries of `sent` it owes, in sending order per sender.
fn owed_by(sent: &[Sent]) -> HashMap<usize, Vec<Owed>> {
    let mut owed: HashMap<usize, Vec<Owed>> = HashMap::new();
    for message in sent {
        for recipient in &message.recipients {
            owed.entry(*recipient).or_default().push(Owed {
                id: message.id,
                file: message.file,
            });
        }
    }
    owed
}

/// Counts the run from what was sent, saved and stored.
async fn tally(
    clients: &[Client],
    cluster: &Cluster,
    plan: &Plan,
    sent: &[Sent],
    outcomes: &HashMap<(EnvelopeId, usize), Outcome>,
    params: Params,
    started: Instant,
) -> anyhow::Result<MediaReport> {
    // Deliveries the plan owes, whether or not their message got made.
    let planned_deliveries: usize = plan
        .sends
        .iter()
        .map(|send| plan.recipients(send.from, send.to).len())
        .sum::<usize>()
        + plan.forwards.len();
    let made_deliveries: usize = sent.iter().map(|message| message.recipients.len()).sum();
    let mut accepted = 0;
    let by_id: HashMap<_, &Sent> = sent.iter().map(|message| (message.id, message)).collect();
    for message in sent {
        if deliver::accepted(&clients[message.from], &message.id)? {
            accepted += 1;
        }
    }
    let (mut saved, mut corrupt, mut logical) = (0, 0, 0u64);
    let mut save_times = Vec::new();
    for ((id, _), outcome) in outcomes {
        match outcome {
            Outcome::Intact { save_ms } => {
                saved += 1;
                save_times.push(*save_ms);
                logical += by_id.get(id).map_or(0, |message| message.blob_size);
            }
            Outcome::Corrupt => corrupt += 1,
            Outcome::Lost => {}
        }
    }
    let deliveries = planned_deliveries.max(made_deliveries);
    let known: HashMap<BlobId, u64> = sent
        .iter()
        .map(|message| (message.blob, message.blob_size))
        .collect();
    let mut bytes_stored_per_relay = Vec::new();
    let mut blobs_per_relay = Vec::new();
    let mut stray_blobs = 0;
    for relay in &cluster.relays {
        let (dir, known) = (relay.data_dir().to_path_buf(), known.clone());
        let stored = tokio::task::spawn_blocking(move || deliver::stored(&dir, &known)).await??;
        stray_blobs += stored.strays + usize::from(stored.bytes != stored.distinct_bytes);
        bytes_stored_per_relay.push(stored.bytes);
        blobs_per_relay.push(stored.blobs);
    }
    let stored_total: u64 = bytes_stored_per_relay.iter().sum();
    Ok(MediaReport {
        scenario: "media",
        relays: params.relays,
        users: params.users,
        offline_users: 0,
        groups: plan.groups.len(),
        files: params.files,
        file_bytes: 0,
        messages: plan.sends.len() + plan.forwards.len(),
        resends: plan.sends.iter().filter(|send| send.again).count(),
        forwards: plan.forwards.len(),
        accepted,
        deliveries,
        saved,
        corrupt,
        lost: deliveries.saturating_sub(saved + corrupt),
        bytes_uploaded: sent.iter().map(|message| message.uploaded).sum(),
        reuploads: sent
            .iter()
            .filter(|message| message.reuses && message.uploaded > 0)
            .count(),
        bytes_stored_per_relay,
        blobs_per_relay,
        stray_blobs,
        dedupe_ratio: if stored_total == 0 {
            0.0
        } else {
            logical as f64 / stored_total as f64
        },
        save_ms: Percentiles::of(save_times),
        wall_s: started.elapsed().as_secs_f64(),
        seed: params.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 * 1024));
        assert_eq!(parse_size("20M"), Ok(20 * 1024 * 1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999M").is_err());
    }
}
