//! Status updates at the relay: `PostStatus` and `GetStatuses` for local devices, the
//! durable forwarding to other relays, and the sweep that deletes every status at its
//! expiry, delivered or not.

mod forward;
mod forwarder;

use crate::retry::Retry;
pub(crate) use forwarder::StatusForwarder;

use std::{sync::Arc, time::Duration};

use redb::Database;
use tidings_protocol::{
    Address, BlobId, BoundedVec, ErrorAnswer, ErrorCode, UserId,
    client::Response,
    status::{Clock, ExpiryError, MAX_STATUSES_PER_ANSWER, StatusPost},
};
use tokio_util::sync::CancellationToken;

use crate::federation::{Directory, Links};
use crate::store::{
    Store, StoreError,
    status::{self, PostOutcome},
    status_media::MAX_MEDIA_RELEASE_BATCH,
};

/// The relay's statuses: their file and the clock expiry is judged by. Cheap to clone.
#[derive(Clone)]
pub(crate) struct StatusBoard {
    db: Arc<Database>,
    clock: Clock,
    /// The mailbox store, where a status's media references are counted.
    store: Store,
    /// Wakes the forwarder when a status with remote viewers is stored.
    forward_wake: Arc<tokio::sync::Notify>,
}

fn storage(error: StoreError) -> ErrorAnswer {
    tracing::error!(%error, "status store");
    ErrorAnswer::new(
        ErrorCode::Storage,
        "the relay could not store or read statuses",
    )
}

impl StatusBoard {
    /// Opens the status file of `data_dir`; media references go to `store`.
    pub fn open(
        data_dir: &std::path::Path,
        clock: Clock,
        store: Store,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            db: Arc::new(status::open(data_dir)?),
            clock,
            store,
            forward_wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The open status database (for online backups).
    pub(crate) fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// The clock (tests advance it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|error| StoreError::Corrupt {
                table: "status",
                reason: format!("blocking task failed: {error}"),
            })?
    }

    /// The task that forwards statuses to other relays (spawn [`StatusForwarder::run`]).
    pub fn forwarder(&self, directory: Directory, links: Links, retry: Retry) -> StatusForwarder {
        StatusForwarder::new(self.clone(), directory, links, retry)
    }

    /// Stores a status a local device posted, with a forward entry for each viewer homed
    /// elsewhere (in the same transaction), and wakes the forwarder.
    pub async fn post(
        &self,
        me: Address,
        post: StatusPost,
        directory: &Directory,
    ) -> Result<Response, ErrorAnswer> {
        let mut remote = Vec::new();
        for user in post.audience.iter().copied() {
            // A failed read counts as remote: the forwarder finds the viewer local and drops it.
            if user != me.user && !matches!(directory.is_local(user).await, Ok(true)) {
                remote.push(user);
            }
        }
        let wake = !remote.is_empty();
        let new = self.store(me, post, remote).await?;
        if new && wake {
            self.forward_wake.notify_one();
        }
        Ok(Response::StatusPosted { new })
    }

    /// Takes a status another relay forwards for its poster.
    pub async fn take_forwarded(
        &self,
        directory: &Directory,
        from: libp2p::PeerId,
        poster: Address,
        post: StatusPost,
    ) -> Result<tidings_protocol::federation::FederationResponse, ErrorAnswer> {
        forward::take_forwarded(self, directory, from, poster, post).await
    }

    /// Checks and stores a status (true: new), with forward entries for `forward_to`.
    async fn store(
        &self,
        poster: Address,
        post: StatusPost,
        forward_to: Vec<UserId>,
    ) -> Result<bool, ErrorAnswer> {
        let me = poster;
        let now = self.clock.now_ms();
        post.check_expiry(now).map_err(|error| {
            let reason = match error {
                ExpiryError::Past => "the status expired already",
                ExpiryError::TooFar => "a status lives at most 24 hours",
            };
            ErrorAnswer::new(ErrorCode::Malformed, reason)
        })?;
        // The media reference is counted first: a crash before the status is stored leaves
        // a reference that is released at the expiry anyway, never a status without one.
        let (id, expires_at_ms) = (post.id, post.expires_at_ms);
        let blobs: Vec<BlobId> = post.blobs.iter().map(|blob| blob.id).collect();
        let held = !blobs.is_empty()
            && self
                .store
                .hold_status_media(id, expires_at_ms, blobs)
                .await
                .map_err(storage)?;
        let outcome = self
            .blocking(move |db| status::put(db, me, post, now, &forward_to))
            .await;
        if held && !matches!(outcome, Ok(PostOutcome::Stored)) {
            self.store
                .release_status_media(id, expires_at_ms)
                .await
                .map_err(storage)?;
        }
        match outcome.map_err(storage)? {
            PostOutcome::Stored => Ok(true),
            PostOutcome::Duplicate => Ok(false),
            PostOutcome::IdTaken => Err(ErrorAnswer::new(
                ErrorCode::IdReused,
                "another status has this id",
            )),
            PostOutcome::TooMany => Err(ErrorAnswer::new(
                ErrorCode::QuotaExceeded,
                "too many statuses live at once",
            )),
        }
    }

    /// The unexpired statuses `me`'s user may see, stored after `after_ms`.
    pub async fn get(&self, me: Address, after_ms: u64) -> Result<Response, ErrorAnswer> {
        let now = self.clock.now_ms();
        let items = self
            .blocking(move |db| status::inbox(db, &me.user, after_ms, now, MAX_STATUSES_PER_ANSWER))
            .await
            .map_err(storage)?;
        let items = BoundedVec::new(items).map_err(|_| {
            ErrorAnswer::new(ErrorCode::Storage, "more statuses than one answer holds")
        })?;
        Ok(Response::Statuses { items })
    }

    /// Deletes every status expired by now and releases their media references; how many
    /// statuses.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        let now = self.clock.now_ms();
        loop {
            let deleted = self.blocking(move |db| status::sweep(db, now)).await?;
            total += deleted;
            if deleted < status::MAX_SWEEP_BATCH {
                break;
            }
        }
        while self.store.release_expired_status_media(now).await? >= MAX_MEDIA_RELEASE_BATCH {}
        Ok(total)
    }

    /// How many stored things reference blob `id` (statuses included).
    pub async fn media_refs(&self, id: BlobId) -> Result<u64, StoreError> {
        self.store.media_refs_of(id).await
    }

    /// How many forward entries wait (a viewer's relay has not taken a status yet).
    pub async fn pending_forwards(&self) -> Result<u64, StoreError> {
        self.blocking(status::forward_count).await
    }

    /// How many statuses are stored, expired or not.
    pub async fn stored(&self) -> Result<u64, StoreError> {
        self.blocking(status::count).await
    }

    /// Sweeps every `interval` until `stop`.
    pub async fn run_sweep(self, interval: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match self.sweep().await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "expired statuses deleted"),
                Err(error) => tracing::error!(%error, "status sweep failed"),
            }
        }
    }
}
