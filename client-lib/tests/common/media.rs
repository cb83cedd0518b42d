//! Helpers of the media tests: files with varied bytes, a relay's blobs on disk, media
//! messages as they arrive, a transfer's last progress.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tidings_client::{Event, MessageRecord, Progress};

use super::TestUser;

/// Bytes that differ from position to position (and from file to file by `seed`).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The whole blobs a relay holds on disk (uploads in progress not counted).
pub fn relay_blobs(relay_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(relay_dir.join("blobs")) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect()
}

/// Syncs `user` until `count` media messages arrived; returns them.
pub async fn media_messages(user: &TestUser, count: usize) -> Vec<MessageRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "only got {got:?}");
        for event in user.sync(Duration::from_secs(2)).await {
            if let Event::Message(record) = event
                && record.media.is_some()
            {
                got.push(record);
            }
        }
    }
    got
}

/// The last progress a transfer reported.
pub fn last_progress() -> (Arc<AtomicU64>, impl FnMut(Progress) + Send + 'static) {
    let done = Arc::new(AtomicU64::new(u64::MAX));
    let seen = done.clone();
    (done, move |progress: Progress| {
        assert!(progress.done <= progress.total);
        seen.store(progress.done, Ordering::SeqCst);
    })
}
