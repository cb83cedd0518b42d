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
pub(crate) const STATUS_POSTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("status_posts");

/// viewer user (32) || posted at (8, big-endian) || status id (16) -> expires at.
pub(crate) const STATUS_INBOX: TableDefinition<&[u8], u64> = TableDefinition::new("status_inbox");

/// expires at (8, big-endian) || status id (16) -> ().
pub(crate) const STATUS_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("status_expiry");

/// poster user (32) || status id (16) -> expires at.
pub(crate) const STATUS_BY_POSTER: TableDefinition<&[u8], u64> =
    TableDefinition::new("status_by_poster");

/// status id (16) || viewer user (32) -> expires at: a viewer homed at another relay whose
/// relay has not yet taken the status (written with the status, deleted once that relay
/// answers or the status expires). At most [`MAX_LIVE_STATUSES_PER_POSTER`] x
/// [`MAX_STATUS_AUDIENCE`] entries per local poster: never more than the inbox holds.
pub(crate) const STATUS_FORWARDS: TableDefinition<&[u8], u64> =
    TableDefinition::new("status_forwards");

/// Length of a [`STATUS_FORWARDS`] key.
const FORWARD_KEY_LEN: usize = 48;

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

fn forward_key(id: &EnvelopeId, viewer: &UserId) -> Vec<u8> {
    let mut key = Vec::with_capacity(FORWARD_KEY_LEN);
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(viewer.as_bytes());
    key
}

/// Deletes every forward entry of the status `id` (16 bytes).
fn remove_forwards_of(forwards: &mut redb::Table<&[u8], u64>, id: &[u8]) -> Result<(), StoreError> {
    let start = [id, &[0u8; 32][..]].concat();
    let end = [id, &[0xffu8; 32][..]].concat();
    forwards.retain_in(start.as_slice()..=end.as_slice(), |_, _| false)?;
    Ok(())
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
    txn.open_table(STATUS_FORWARDS)?;
    txn.commit()?;
    Ok(db)
}

/// Stores `post` from `poster` at `now_ms` (its expiry checked by the caller): one copy,
/// an inbox entry for each audience user and for the poster, and in the same transaction a
/// forward entry for each of `forward_to` (audience users homed at other relays).
pub fn put(
    db: &Database,
    poster: Address,
    post: StatusPost,
    now_ms: u64,
    forward_to: &[UserId],
) -> Result<PostOutcome, StoreError> {
    let txn = db.begin_write()?;
    let outcome = {
        let mut posts = txn.open_table(STATUS_POSTS)?;
        let mut inbox = txn.open_table(STATUS_INBOX)?;
        let mut expiry = txn.open_table(STATUS_EXPIRY)?;
        let mut by_poster = txn.open_table(STATUS_BY_POSTER)?;
        let mut forwards = txn.open_table(STATUS_FORWARDS)?;
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
        for viewer in forward_to.iter().take(MAX_STATUS_AUDIENCE) {
            if *viewer != poster.user && post.audience.contains(viewer) {
                forwards.insert(forward_key(&post.id, viewer).as_slice(), post.expires_at_ms)?;
            }
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
        let mut forwards = txn.open_table(STATUS_FORWARDS)?;
        let end = expiry_key(now_ms.saturating_add(1), &EnvelopeId::from_bytes([0; 16]));
        let due: Vec<Vec<u8>> = expiry
            .range(..end.as_slice())?
            .take(MAX_SWEEP_BATCH)
            .map(|entry| entry.map(|(key, _)| key.value().to_vec()))
            .collect::<Result<_, _>>()?;
        for key in &due {
            expiry.remove(key.as_slice())?;
            let id = &key[8..];
            remove_forwards_of(&mut forwards, id)?;
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

/// A viewer at another relay that has not yet taken a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingForward {
    /// The status.
    pub id: EnvelopeId,
    /// The viewer.
    pub viewer: UserId,
    /// When the status expires (the entry goes then, sent or not).
    pub expires_at_ms: u64,
}

fn pending_of(key: &[u8], expires_at_ms: u64) -> Result<PendingForward, StoreError> {
    let (Some(id), Some(viewer)) = (key.get(..16), key.get(16..FORWARD_KEY_LEN)) else {
        return Err(corrupt("status_forwards", "short key"));
    };
    let id: [u8; 16] = id
        .try_into()
        .map_err(|_| corrupt("status_forwards", "bad id"))?;
    let viewer: [u8; 32] = viewer
        .try_into()
        .map_err(|_| corrupt("status_forwards", "bad user"))?;
    Ok(PendingForward {
        id: EnvelopeId::from_bytes(id),
        viewer: UserId::from_bytes(viewer),
        expires_at_ms,
    })
}

/// Up to `limit` forward entries after `after` (from the first if None), in key order.
pub fn forwards_after(
    db: &Database,
    after: Option<(EnvelopeId, UserId)>,
    limit: usize,
) -> Result<Vec<PendingForward>, StoreError> {
    let txn = db.begin_read()?;
    let forwards = txn.open_table(STATUS_FORWARDS)?;
    let entries = match after {
        Some((id, viewer)) => {
            let start = forward_key(&id, &viewer);
            forwards.range::<&[u8]>((
                std::ops::Bound::Excluded(start.as_slice()),
                std::ops::Bound::Unbounded,
            ))?
        }
        None => forwards.range::<&[u8]>(..)?,
    };
    let mut out = Vec::new();
    for entry in entries.take(limit) {
        let (key, expires) = entry?;
        out.push(pending_of(key.value(), expires.value())?);
    }
    Ok(out)
}

/// Deletes the forward entries of status `id` for `viewers` (their relay took it).
pub fn forwards_done(db: &Database, id: EnvelopeId, viewers: &[UserId]) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut forwards = txn.open_table(STATUS_FORWARDS)?;
        for viewer in viewers {
            forwards.remove(forward_key(&id, viewer).as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Deletes every forward entry of status `id` (it expired, or is gone).
pub fn drop_forwards(db: &Database, id: EnvelopeId) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut forwards = txn.open_table(STATUS_FORWARDS)?;
        remove_forwards_of(&mut forwards, id.as_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// The stored status `id` and its poster, if it is held.
pub fn post(db: &Database, id: EnvelopeId) -> Result<Option<(Address, StatusPost)>, StoreError> {
    let txn = db.begin_read()?;
    let posts = txn.open_table(STATUS_POSTS)?;
    let Some(bytes) = posts.get(id.as_bytes().as_slice())? else {
        return Ok(None);
    };
    let stored = decode(bytes.value())?;
    Ok(Some((stored.poster, stored.post)))
}

/// How many forward entries wait (for tests).
pub fn forward_count(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    Ok(txn.open_table(STATUS_FORWARDS)?.len()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tidings_protocol::{BoundedVec, DeviceId};

    fn user(byte: u8) -> UserId {
        UserId::from_bytes([byte; 32])
    }

    #[test]
    fn forward_entries_come_with_the_status_and_go_when_taken_or_swept() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).unwrap();
        let poster = Address {
            user: user(1),
            device: DeviceId::from_bytes([1; 32]),
        };
        let post = |expires_at_ms| StatusPost {
            id: EnvelopeId::random(),
            audience: BoundedVec::new(vec![user(2), user(3), user(4)]).unwrap(),
            expires_at_ms,
            body: vec![7],
            blobs: Default::default(),
        };
        let (first, second) = (post(100), post(200));
        // user(9) is not in the audience and the poster needs no forward: neither is kept.
        let remote = [user(2), user(3), user(9), user(1)];
        assert_eq!(
            put(&db, poster, first.clone(), 1, &remote).unwrap(),
            PostOutcome::Stored
        );
        assert_eq!(
            put(&db, poster, second.clone(), 1, &[user(4)]).unwrap(),
            PostOutcome::Stored
        );
        assert_eq!(forward_count(&db).unwrap(), 3);
        let all = forwards_after(&db, None, 10).unwrap();
        assert_eq!(all.len(), 3);
        let rest = forwards_after(&db, Some((all[0].id, all[0].viewer)), 10).unwrap();
        assert_eq!(rest, all[1..]);

        forwards_done(&db, first.id, &[user(2)]).unwrap();
        assert_eq!(forward_count(&db).unwrap(), 2);
        // The sweep at the first's expiry takes its leftover entry with it.
        assert_eq!(sweep(&db, 100).unwrap(), 1);
        let left = forwards_after(&db, None, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].id, left[0].viewer), (second.id, user(4)));
        drop_forwards(&db, second.id).unwrap();
        assert_eq!(forward_count(&db).unwrap(), 0);
        assert!(post_of_is_kept(&db, second.id));
    }

    fn post_of_is_kept(db: &Database, id: EnvelopeId) -> bool {
        post(db, id).unwrap().is_some()
    }
}
