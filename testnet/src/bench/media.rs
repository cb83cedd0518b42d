//! `bench media`: one file uploaded through a relay process and saved through the same relay
//! and through a second one (which fetches it first), next to a plain copy on the same disk,
//! with the relays' resident memory sampled meanwhile, at two file sizes.

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::ensure;
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;
use tidings_client::{Client, Progress};
use tidings_protocol::{BlobId, EnvelopeId};
use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    register_many,
    rss::{Sampler, rss_kib},
};
use crate::{cluster::Cluster, files, report::Outcome, scenario::users};

/// Largest file the bench takes, MiB (well below the relay's blob limit once raised).
const MAX_SIZE_MIB: u64 = 1024;
/// How long a recipient may take to get the message naming the file.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// The sender, the recipient on the first relay, the recipient on the second.
const SENDER: usize = 0;
const LOCAL: usize = 1;
const REMOTE: usize = 2;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// The larger file, MiB; the run also measures one a quarter of its size, to show
    /// whether the relay's memory grows with the file.
    #[arg(long, default_value_t = 64)]
    pub size_mib: u64,
    /// 1: upload and download through one relay; 2: also a download through a second
    /// relay, which fetches the file from the first and serves it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub relays: u8,
}

/// MiB per second of `bytes` moved in `seconds`.
fn mib_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds.max(1e-9)
}

/// One file's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SizeFigures {
    /// The file's plaintext size, bytes.
    pub bytes: u64,
    /// `std::fs::copy` of a file of this size on the same disk.
    pub copy_mib_s: f64,
    /// The relay taking the upload: first byte sent to the relay's "stored" (hash checked,
    /// fsynced, renamed) and the message sent.
    pub upload_mib_s: f64,
    /// The whole `send_file`: sealing (encryption into a temp file) and the upload.
    pub send_mib_s: f64,
    /// A recipient on the same relay: the download, from asking to the last byte written.
    pub download_mib_s: f64,
    /// Its whole `save_media`: the download, the hash check and the decryption.
    pub save_mib_s: f64,
    /// A recipient on the second relay: its relay fetches the blob from the first, then
    /// serves it (asking to the last byte written). None with one relay.
    pub remote_download_mib_s: Option<f64>,
    /// Its whole `save_media`.
    pub remote_save_mib_s: Option<f64>,
    /// Per relay, resident memory just before the transfers, KiB.
    pub rss_baseline_kib: Vec<u64>,
    /// Per relay, the largest resident memory sampled (every 100 ms) during them, KiB.
    pub rss_peak_kib: Vec<u64>,
    /// Whether every saved copy had the original's SHA-256.
    pub intact: bool,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct MediaBenchReport {
    /// Bench name.
    pub bench: &'static str,
    /// Relay processes.
    pub relays: u8,
    /// The smaller file, then the larger.
    pub sizes: Vec<SizeFigures>,
    /// Per relay, how much higher its peak was with the larger file, KiB (bounded memory
    /// keeps this far below the difference in size).
    pub rss_peak_growth_kib: Vec<i64>,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
}

impl MediaBenchReport {
    /// Whether every saved file was intact.
    pub fn passed(&self) -> bool {
        self.sizes.iter().all(|size| size.intact)
    }

    /// Prints for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!("media bench: {} relay(s)", self.relays);
        for size in &self.sizes {
            println!(
                "  {:.1} MiB file: copy {:.0} MiB/s; upload {:.1} MiB/s (with sealing {:.1}); download {:.1} MiB/s (with check and decryption {:.1})",
                size.bytes as f64 / (1024.0 * 1024.0),
                size.copy_mib_s,
                size.upload_mib_s,
                size.send_mib_s,
                size.download_mib_s,
                size.save_mib_s
            );
            if let (Some(download), Some(save)) =
                (size.remote_download_mib_s, size.remote_save_mib_s)
            {
                println!(
                    "    through the second relay (fetch + serve): download {download:.1} MiB/s (with check and decryption {save:.1})"
                );
            }
            let rss: Vec<String> = size
                .rss_baseline_kib
                .iter()
                .zip(&size.rss_peak_kib)
                .map(|(base, peak)| {
                    format!(
                        "{:.1} -> {:.1} MiB",
                        *base as f64 / 1024.0,
                        *peak as f64 / 1024.0
                    )
                })
                .collect();
            println!("    relay RSS (baseline -> peak): {}", rss.join(", "));
        }
        println!(
            "  peak RSS growth from the smaller to the larger file: {:?} KiB; wall {:.1} s",
            self.rss_peak_growth_kib, self.wall_s
        );
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

impl Outcome for MediaBenchReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some("the media bench saved a file that differs from the original")
    }
}

/// Runs the bench in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<MediaBenchReport> {
    ensure!(
        (1..=MAX_SIZE_MIB).contains(&params.size_mib),
        "--size-mib from 1 to {MAX_SIZE_MIB}"
    );
    let started = Instant::now();
    let largest = params.size_mib << 20;
    let cluster = Cluster::start_with(work, usize::from(params.relays), |config| {
        // Capacity, not policy: no federation rate, room for the files.
        config.blobs.federation_bytes_per_sec = 1 << 40;
        config.blobs.max_blob_bytes = config.blobs.max_blob_bytes.max(largest + (largest >> 8));
        config.blobs.user_quota_bytes = config.blobs.user_quota_bytes.max(4 * largest);
    })
    .await?;
    let first = cluster.relays[0].addr.clone();
    let last = cluster.relays[cluster.relays.len() - 1].addr.clone();
    let clients = register_many(&work.join("users"), vec![first.clone(), first, last]).await?;
    users::introduce_all(&clients)?;
    let stop = CancellationToken::new();
    let (_online, watcher) = watch::channel(true);
    let mut receivers = JoinSet::new();
    for client in &clients[LOCAL..] {
        receivers.spawn(users::receive(
            client.clone(),
            watcher.clone(),
            stop.clone(),
        ));
    }

    // Olm sessions first, so the timed sends pay no key claim.
    let mut session = users::connect(&clients[SENDER]).await;
    for recipient in [LOCAL, REMOTE] {
        session
            .send_text(&users::name(recipient), "warming up")
            .await?;
    }
    session.close().await;

    let mut sizes = Vec::new();
    for bytes in [(largest / 4).max(1 << 20), largest] {
        sizes.push(measure(work, &clients, &cluster, params.relays == 2, bytes).await?);
    }
    stop.cancel();
    while receivers.join_next().await.is_some() {}
    cluster.stop().await?;
    let rss_peak_growth_kib = sizes[1]
        .rss_peak_kib
        .iter()
        .zip(&sizes[0].rss_peak_kib)
        .map(|(large, small)| *large as i64 - *small as i64)
        .collect();
    Ok(MediaBenchReport {
        bench: "media",
        relays: params.relays,
        sizes,
        rss_peak_growth_kib,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Sends one random file of `bytes` from the sender to the local recipient, forwards it to
/// the remote one (if `remote`), and times each side and a plain copy.
async fn measure(
    work: &Path,
    clients: &[Client],
    cluster: &Cluster,
    remote: bool,
    bytes: u64,
) -> anyhow::Result<SizeFigures> {
    let file = work.join(format!("bench-{bytes}.bin"));
    let digest = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            files::write_random(&file, bytes, &mut StdRng::seed_from_u64(bytes))
        })
        .await??
    };
    let copy_s = {
        let (from, to) = (file.clone(), work.join(format!("copy-{bytes}.bin")));
        tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
            let copying = Instant::now();
            std::fs::copy(&from, &to)?;
            let took = copying.elapsed().as_secs_f64();
            std::fs::remove_file(&to)?;
            Ok(took)
        })
        .await??
    };
    let pids: Vec<u32> = cluster.relays.iter().map(|relay| relay.pid()).collect();
    let rss_baseline_kib = pids
        .iter()
        .map(|pid| rss_kib(*pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sampler = Sampler::start(pids);

    let mut session = users::connect(&clients[SENDER]).await;
    let first_byte = Arc::new(Mutex::new(None::<Instant>));
    let seen = first_byte.clone();
    let sending = Instant::now();
    let sent = session
        .send_file(&users::name(LOCAL), &file, None, move |_: Progress| {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(Instant::now);
        })
        .await?;
    let sent_at = Instant::now();
    let uploading = first_byte
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or(sending);
    let forwarded = if remote {
        Some(
            session
                .forward(sent.record.id, &users::name(REMOTE))
                .await?,
        )
    } else {
        None
    };
    session.close().await;

    let saves = work.join("saved");
    let local = save(&clients[LOCAL], sent.record.id, &saves, digest).await?;
    let remote = match forwarded {
        Some(record) => Some(save(&clients[REMOTE], record.id, &saves, digest).await?),
        None => None,
    };
    let rss_peak_kib = sampler.peaks().await?;
    let _ = tokio::fs::remove_file(&file).await;
    Ok(SizeFigures {
        bytes,
        copy_mib_s: mib_per_s(bytes, copy_s),
        upload_mib_s: mib_per_s(bytes, (sent_at - uploading).as_secs_f64()),
        send_mib_s: mib_per_s(bytes, (sent_at - sending).as_secs_f64()),
        download_mib_s: mib_per_s(bytes, local.download_s),
        save_mib_s: mib_per_s(bytes, local.save_s),
        remote_download_mib_s: remote.map(|saved| mib_per_s(bytes, saved.download_s)),
        remote_save_mib_s: remote.map(|saved| mib_per_s(bytes, saved.save_s)),
        rss_baseline_kib,
        rss_peak_kib,
        intact: local.intact && remote.is_none_or(|saved| saved.intact),
    })
}

/// One timed save.
#[derive(Debug, Clone, Copy)]
struct Saved {
    download_s: f64,
    save_s: f64,
    intact: bool,
}

/// Waits for message `id` at `client`, saves it into `dir`, timed, and checks it.
async fn save(
    client: &Client,
    id: EnvelopeId,
    dir: &Path,
    digest: BlobId,
) -> anyhow::Result<Saved> {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    while client.store().message(&id)?.is_none() {
        ensure!(
            Instant::now() < deadline,
            "the file's message did not arrive in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::fs::create_dir_all(dir).await?;
    let last_byte = Arc::new(Mutex::new(None::<Instant>));
    let seen = last_byte.clone();
    let saving = Instant::now();
    let saved = client
        .save_media(id, dir, move |progress: Progress| {
            if progress.done == progress.total {
                *seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            }
        })
        .await?;
    let save_s = saving.elapsed().as_secs_f64();
    let downloaded = last_byte
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or_else(Instant::now);
    let intact = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let same = files::digest_of(&saved)? == digest;
        std::fs::remove_file(&saved)?;
        Ok(same)
    })
    .await??;
    Ok(Saved {
        download_s: (downloaded - saving).as_secs_f64(),
        save_s,
        intact,
    })
}
