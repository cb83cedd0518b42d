//! Sending, forwarding and saving the media of a run, and checking what each relay stores.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use tidings_client::{Client, ClientError, MediaError, MessageStatus, Session};
use tidings_protocol::{BlobId, EnvelopeId};
use tokio::task::JoinSet;

use super::plan::Sample;
use crate::{files, scenario::users};

/// How long a sender keeps flushing what is still pending after its list is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Tries of one send or forward (a failure after the message was queued makes the retry a
/// second message, which is not counted: only the one whose id is known is owed).
const JOB_ATTEMPTS: u32 = 3;

/// Pause between looks at a recipient's store for a message that has not arrived yet.
const POLL: Duration = Duration::from_millis(200);

/// One media message of the run, as its sender's client made it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The message id (the same in every recipient's store).
    pub id: EnvelopeId,
    /// Who sent it (index into the clients).
    pub from: usize,
    /// Index into the samples.
    pub file: usize,
    /// Who must save it.
    pub recipients: Vec<usize>,
    /// The blob it names and its ciphertext size.
    pub blob: BlobId,
    /// Ciphertext bytes of the blob.
    pub blob_size: u64,
    /// Ciphertext bytes the sender uploaded for it (0 for a reused upload or a forward).
    pub uploaded: u64,
    /// Whether this is a re-send of a file or a forward (it must upload nothing).
    pub reuses: bool,
}

/// One thing a sender does: send a file or forward a message it holds.
#[derive(Debug, Clone)]
pub enum Job {
    /// Send the file at `path` (sample `file`) to `target`.
    File {
        /// Index into the samples.
        file: usize,
        /// The file.
        path: PathBuf,
        /// Contact or group name.
        target: String,
        /// Who must save it.
        recipients: Vec<usize>,
        /// Whether the sender sent this file before.
        again: bool,
    },
    /// Forward message `id` (sample `file`) to `target`.
    Forward {
        /// The message held by the forwarder.
        id: EnvelopeId,
        /// Index into the samples.
        file: usize,
        /// Contact or group name.
        target: String,
        /// Who must save it.
        recipients: Vec<usize>,
    },
}

/// Runs `jobs` in order on `client` (a job that fails is tried again on a new session, up to
/// [`JOB_ATTEMPTS`] times), then flushes until nothing is pending; returns the messages made.
/// A job that never succeeds is logged and left out: its deliveries count as lost.
pub async fn send_all(client: Client, from: usize, jobs: Vec<Job>) -> Vec<Sent> {
    let mut session = users::connect(&client).await;
    let mut sent = Vec::new();
    for job in jobs {
        for attempt in 1..=JOB_ATTEMPTS {
            match run_job(&mut session, from, job.clone()).await {
                Ok(message) => {
                    sent.push(message);
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "a media send failed");
                    session = users::connect(&client).await;
                }
            }
        }
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        match client.store().pending(1) {
            Ok(pending) if pending.is_empty() => break,
            _ => {}
        }
        if session.flush().await.is_err() {
            session = users::connect(&client).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    session.close().await;
    sent
}

async fn run_job(session: &mut Session, from: usize, job: Job) -> anyhow::Result<Sent> {
    match job {
        Job::File {
            file,
            path,
            target,
            recipients,
            again,
        } => {
            let done = session.send_file(&target, &path, None, |_| {}).await?;
            let media = done
                .record
                .media
                .context("a sent file's record carries no media")?;
            Ok(Sent {
                id: done.record.id,
                from,
                file,
                recipients,
                blob: media.blob.id,
                blob_size: media.blob.size,
                uploaded: if done.uploaded { media.blob.size } else { 0 },
                reuses: again,
            })
        }
        Job::Forward {
            id,
            file,
            target,
            recipients,
        } => {
            let record = session.forward(id, &target).await?;
            let media = record
                .media
                .context("a forwarded record carries no media")?;
            Ok(Sent {
                id: record.id,
                from,
                file,
                recipients,
                blob: media.blob.id,
                blob_size: media.blob.size,
                uploaded: 0,
                reuses: true,
            })
        }
    }
}

/// Whether the relay accepted message `id` of `client` (✓ or better).
pub fn accepted(client: &Client, id: &EnvelopeId) -> anyhow::Result<bool> {
    Ok(client.store().message(id)?.is_some_and(|record| {
        !matches!(
            record.status,
            MessageStatus::Pending | MessageStatus::Failed(_)
        )
    }))
}

/// How one owed delivery ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Saved, and its SHA-256 is the original's; `save_ms` is how long `save_media` took
    /// (download, check, decryption).
    Intact {
        /// Milliseconds.
        save_ms: f64,
    },
    /// Saved (or opened) with other bytes than the original, or refused as altered.
    Corrupt,
    /// Not saved before the deadline.
    Lost,
}

/// One delivery to save and check: message `id` carrying sample `file`.
#[derive(Debug, Clone, Copy)]
pub struct Owed {
    /// The message.
    pub id: EnvelopeId,
    /// Index into the samples.
    pub file: usize,
}

/// Saves every owed delivery of every recipient (recipients in parallel, each one's in
/// order) into `dir`, compares each with its sample, and deletes the copy; returns the
/// outcome per (message, recipient).
pub async fn save_all(
    clients: &[Client],
    owed: HashMap<usize, Vec<Owed>>,
    samples: &[Sample],
    dir: &Path,
    deadline: Instant,
) -> anyhow::Result<HashMap<(EnvelopeId, usize), Outcome>> {
    let mut tasks = JoinSet::new();
    for (recipient, list) in owed {
        let client = clients[recipient].clone();
        let into = dir.join(users::name(recipient));
        std::fs::create_dir_all(&into).with_context(|| format!("creating {}", into.display()))?;
        let samples = samples.to_vec();
        tasks.spawn(async move {
            let mut outcomes = Vec::with_capacity(list.len());
            for owed in list {
                let outcome = save_one(&client, owed, &samples[owed.file], &into, deadline).await;
                if !matches!(outcome, Outcome::Intact { .. }) {
                    tracing::error!(?outcome, id = %owed.id, file = owed.file, to = %users::name(recipient), "media delivery failed");
                }
                outcomes.push(((owed.id, recipient), outcome));
            }
            outcomes
        });
    }
    let mut outcomes = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.extend(joined?);
    }
    Ok(outcomes)
}

async fn save_one(
    client: &Client,
    owed: Owed,
    sample: &Sample,
    into: &Path,
    deadline: Instant,
) -> Outcome {
    loop {
        let arrived = matches!(client.store().message(&owed.id), Ok(Some(_)));
        if arrived {
            let saving = Instant::now();
            match client.save_media(owed.id, into, |_| {}).await {
                Ok(saved) => {
                    let save_ms = saving.elapsed().as_secs_f64() * 1000.0;
                    return compare(&saved, sample, save_ms).await;
                }
                Err(ClientError::Media(MediaError::Crypt(error))) => {
                    tracing::error!(%error, "a saved file did not open");
                    return Outcome::Corrupt;
                }
                Err(ClientError::Media(MediaError::Mismatch { expected, got })) => {
                    tracing::error!(%expected, %got, "a downloaded blob is not the one named");
                    return Outcome::Corrupt;
                }
                Err(error) => tracing::debug!(%error, "saving failed; trying again"),
            }
        }
        if Instant::now() >= deadline {
            return Outcome::Lost;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Compares a saved file with its sample by SHA-256, then deletes the saved copy.
async fn compare(saved: &Path, sample: &Sample, save_ms: f64) -> Outcome {
    let saved = saved.to_path_buf();
    let want = sample.digest;
    tokio::task::spawn_blocking(move || {
        let same = files::digest_of(&saved).is_ok_and(|got| got == want);
        let _ = std::fs::remove_file(&saved);
        if same {
            Outcome::Intact { save_ms }
        } else {
            Outcome::Corrupt
        }
    })
    .await
    .unwrap_or(Outcome::Corrupt)
}

/// What one relay's blob directory holds.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Sum of the finished blob files' sizes (`blobs/partial/` not counted).
    pub bytes: u64,
    /// Finished blob files.
    pub blobs: usize,
    /// Sum of the sizes of the distinct blobs of the run it holds.
    pub distinct_bytes: u64,
    /// Files that are not a blob of the run at its size and with its hash.
    pub strays: usize,
}

/// Reads `<data dir>/blobs/` of a relay: every file must be named by the id of a blob of
/// the run, have its size, and hash to its name (blocking).
pub fn stored(data_dir: &Path, known: &HashMap<BlobId, u64>) -> anyhow::Result<Stored> {
    let dir = data_dir.join("blobs");
    let mut stored = Stored::default();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(stored);
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        stored.bytes += meta.len();
        stored.blobs += 1;
        let name = entry.file_name().to_string_lossy().into_owned();
        let fits = name.parse::<BlobId>().ok().and_then(|id| {
            let size = *known.get(&id)?;
            let hashed = size == meta.len() && files::digest_of(&entry.path()).ok()? == id;
            hashed.then_some(size)
        });
        match fits {
            Some(size) => stored.distinct_bytes += size,
            None => {
                tracing::error!(file = %entry.path().display(), "a relay holds a file that is no blob of the run");
                stored.strays += 1;
            }
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blobs_of_the_run_at_their_size_and_hash_count_as_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(blobs.join("partial")).unwrap();
        let (good, other, unknown) = (b"sealed bytes".to_vec(), b"other".to_vec(), b"x".to_vec());
        let (good_id, other_id) = (BlobId::of(&good), BlobId::of(&other));
        std::fs::write(blobs.join(good_id.to_string()), &good).unwrap();
        // Named as a blob of the run, with other bytes of the same size.
        std::fs::write(blobs.join(other_id.to_string()), b"OTHER").unwrap();
        std::fs::write(blobs.join(BlobId::of(&unknown).to_string()), &unknown).unwrap();
        std::fs::write(blobs.join("partial").join("u-half"), b"half").unwrap();
        let known = HashMap::from([(good_id, good.len() as u64), (other_id, other.len() as u64)]);
        let stored = stored(dir.path(), &known).unwrap();
        assert_eq!(stored.blobs, 3, "uploads in progress are not counted");
        assert_eq!(stored.bytes, (good.len() + 5 + 1) as u64);
        assert_eq!(stored.distinct_bytes, good.len() as u64);
        assert_eq!(stored.strays, 2);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(super::stored(empty.path(), &known).unwrap().blobs, 0);
    }
}
