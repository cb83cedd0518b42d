//! Statuses in their own redb file (`status.redb`): one stored copy per status, an inbox
//! entry per audience user referencing it, and an expiry index the sweep walks.
//!
//! Statuses live at most a day and are never handed off or migrated, so they stay apart from
//! the mailbox store and its writer; every transaction here runs on the blocking pool.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tidings_protocol::{
    Address, EnvelopeId, UserId, codec,
    status::{MAX_STATUS_AUDIENCE, MAX_STATUS_POST_BYTES, StatusItem, StatusPost},
    store::StoreError,
};

/// The file in the data dir.
pub const STATUS_FILE: &str = "status.redb";

/// Most unexpired statuses one user may have stored at once.
pub const MAX_LIVE_STATUSES_PER_POSTER: usize = 64;

/// Most statuses one sweep transaction deletes (the sweep loops until none is due).
pub const MAX_SWEEP_BATCH: usize = 256;

/// Largest stored status record (a post at its bound plus the poster and times).
const MAX_STATUS_RECORD_BYTES: usize = MAX_STATUS_POST_BYTES + 256;

/// Status id -> the stored status ([`StoredStatus`], CBOR).
const STATUS_POSTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("status_posts");

/// viewer user (32) || posted at (8, big-endian) || status id (16) -> expires at.
const STATUS_INBOX: TableDefinition<&[u8], u64> = TableDefinition::new("status_inbox");

/// expires at (8, big-endian) || status id (16) -> ().
const STATUS_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("status_expiry");

/// poster user (32) || status id (16) -> expires at.
const STATUS_BY_POSTER: TableDefinition<&[u8], u64> = TableDefinition::new("status_by_poster");

/// One stored status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredStatus {
    poster: Address,
    posted_at_ms: u64,
    post: StatusPost,
}

/// What became of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    /// Stored now.
    Stored,
    /// Already stored under that id by the same poster.
    Duplicate,
    /// The id is taken by someone else's status.
    IdTaken,
    /// The poster has [`MAX_LIVE_STATUSES_PER_POSTER`] statuses live.
    TooMany,
}

fn corrupt(table: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: error.to_string(),
    }
}

fn inbox_key(viewer: &UserId, posted_at_ms: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut key = Vec::with_capacity(56);
    key.extend_from_slice(viewer.as_bytes());
    key.extend_from_slice(&posted_at_ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn expiry_key(expires_at_ms: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(&expires_at_ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn poster_key(poster: &UserId, id: &EnvelopeId) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(poster.as_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn decode(bytes: &[u8]) -> Result<StoredStatus, StoreError> {
    let stored: StoredStatus = codec::decode(bytes, MAX_STATUS_RECORD_BYTES)
        .map_err(|error| corrupt("status_posts", error))?;
    stored
        .post
        .check()
        .map_err(|error| corrupt("status_posts", error))?;
    Ok(stored)
}

/// Opens (creating) the status file in `data_dir`, with its tables.
pub fn open(data_dir: &Path) -> Result<Database, StoreError> {
    let db = Database::create(data_dir.join(STATUS_FILE))?;
    let txn = db.begin_write()?;
    txn.open_table(STATUS_POSTS)?;
    txn.open_table(STATUS_INBOX)?;
    txn.open_table(STATUS_EXPIRY)?;
    txn.open_table(STATUS_BY_POSTER)?;
    txn.commit()?;
    Ok(db)
}

/// Stores `post` from `poster` at `now_ms` (its expiry checked by the caller): one copy,
/// an inbox entry for each audience user and for the poster.
pub fn put(
    db: &Database,
    poster: Address,
    post: StatusPost,
    now_ms: u64,
) -> Result<PostOutcome, StoreError> {
    let txn = db.begin_write()?;
    let outcome = {
        let mut posts = txn.open_table(STATUS_POSTS)?;
        let mut inbox = txn.open_table(STATUS_INBOX)?;
        let mut expiry = txn.open_table(STATUS_EXPIRY)?;
        let mut by_poster = txn.open_table(STATUS_BY_POSTER)?;
        if let Some(held) = posts.get(post.id.as_bytes().as_slice())? {
            let held = decode(held.value())?;
            return Ok(if held.poster.user == poster.user {
                PostOutcome::Duplicate
            } else {
                PostOutcome::IdTaken
            });
        }
        let mut prefix_end = poster.user.as_bytes().to_vec();
        prefix_end.extend_from_slice(&[0xff; 17]);
        let live = by_poster
            .range(poster.user.as_bytes().as_slice()..prefix_end.as_slice())?
            .filter_map(Result::ok)
            .filter(|(_, expires)| expires.value() > now_ms)
            .take(MAX_LIVE_STATUSES_PER_POSTER)
            .count();
        if live >= MAX_LIVE_STATUSES_PER_POSTER {
            return Ok(PostOutcome::TooMany);
        }
        let mut viewers: Vec<UserId> = post.audience.iter().copied().collect();
        viewers.push(poster.user);
        viewers.sort_unstable();
        viewers.dedup();
        viewers.truncate(MAX_STATUS_AUDIENCE + 1);
        for viewer in &viewers {
            inbox.insert(
                inbox_key(viewer, now_ms, &post.id).as_slice(),
                post.expires_at_ms,
            )?;
        }
        expiry.insert(expiry_key(post.expires_at_ms, &post.id).as_slice(), ())?;
        by_poster.insert(
            poster_key(&poster.user, &post.id).as_slice(),
            post.expires_at_ms,
        )?;
        let id = post.id;
        let record = StoredStatus {
            poster,
            posted_at_ms: now_ms,
            post,
        };
        posts.insert(id.as_bytes().as_slice(), codec::encode(&record).as_slice())?;
        PostOutcome::Stored
    };
    txn.commit()?;
    Ok(outcome)
}

/// Statuses `viewer` is in the audience of, stored after `after_ms` and unexpired at
/// `now_ms`, oldest first, at most `limit`.
pub fn inbox(
    db: &Database,
    viewer: &UserId,
    after_ms: u64,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<StatusItem>, StoreError> {
    let txn = db.begin_read()?;
    let inbox = txn.open_table(STATUS_INBOX)?;
    let posts = txn.open_table(STATUS_POSTS)?;
    let start = inbox_key(
        viewer,
        after_ms.saturating_add(1),
        &EnvelopeId::from_bytes([0; 16]),
    );
    let mut end = viewer.as_bytes().to_vec();
    end.extend_from_slice(&[0xff; 25]);
    let mut out = Vec::new();
    for entry in inbox.range(start.as_slice()..end.as_slice())? {
        if out.len() >= limit {
            break;
        }
        let (key, expires) = entry?;
        if expires.value() <= now_ms {
            continue;
        }
        let id = &key.value()[40..];
        let Some(bytes) = posts.get(id)? else {
            continue;
        };
        let stored = decode(bytes.value())?;
        out.push(StatusItem {
            poster: stored.poster,
            id: stored.post.id,
            posted_at_ms: stored.posted_at_ms,
            expires_at_ms: stored.post.expires_at_ms,
            body: stored.post.body,
        });
    }
    Ok(out)
}

/// Deletes up to [`MAX_SWEEP_BATCH`] statuses expired at `now_ms`, with their inbox
/// entries. Returns how many it deleted.
pub fn sweep(db: &Database, now_ms: u64) -> Result<usize, StoreError> {
    let txn = db.begin_write()?;
    let deleted = {
        let mut posts = txn.open_table(STATUS_POSTS)?;
        let mut inbox = txn.open_table(STATUS_INBOX)?;
        let mut expiry = txn.open_table(STATUS_EXPIRY)?;
        let mut by_poster = txn.open_table(STATUS_BY_POSTER)?;
        let end = expiry_key(now_ms.saturating_add(1), &EnvelopeId::from_bytes([0; 16]));
        let due: Vec<Vec<u8>> = expiry
            .range(..end.as_slice())?
            .take(MAX_SWEEP_BATCH)
            .map(|entry| entry.map(|(key, _)| key.value().to_vec()))
            .collect::<Result<_, _>>()?;
        for key in &due {
            expiry.remove(key.as_slice())?;
            let id = &key[8..];
            let Some(bytes) = posts.remove(id)? else {
                continue;
            };
            let stored = decode(bytes.value())?;
            drop(bytes);
            let mut viewers: Vec<UserId> = stored.post.audience.iter().copied().collect();
            viewers.push(stored.poster.user);
            for viewer in &viewers {
                inbox.remove(inbox_key(viewer, stored.posted_at_ms, &stored.post.id).as_slice())?;
            }
            by_poster.remove(poster_key(&stored.poster.user, &stored.post.id).as_slice())?;
        }
        due.len()
    };
    txn.commit()?;
    Ok(deleted)
}

/// How many statuses are stored (expired or not): for tests and the scenario's check.
pub fn count(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    Ok(txn.open_table(STATUS_POSTS)?.len()?)
}
