//! The status forwarder: hands each locally posted status to the relays of its remote
//! viewers, retrying with backoff until each relay takes it or the status expires.
//!
//! Its work list is the `status_forwards` table, written in the transaction that stored the
//! status, so a restart loses nothing: the forwarder reads the table again when it starts.
//! Entries name viewers, not relays: where a viewer lives is a DHT lookup that cannot run
//! inside a redb transaction, and it may change during the status's day (a viewer moves), so
//! it is looked up when a send is due and grouped into one request per relay then.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use libp2p::PeerId;
use tidings_protocol::{
    Address, BoundedVec, EnvelopeId, ErrorCode, UserId,
    federation::{FederationRequest, FederationResponse},
    status::StatusPost,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::StatusBoard;
use crate::{
    federation::{Directory, Home, LinkError, Links, LookupBudget, Remote},
    retry::Retry,
};

/// Forward entries read from the table at a time.
const LOAD_CHUNK: usize = 1024;

/// Most forward entries held in memory at once; the rest wait in the table for room.
const MAX_LOADED: usize = 16_384;

/// Statuses being sent at once.
const MAX_IN_FLIGHT: usize = 16;

/// How often the forwarder looks at its timers when nothing else happens.
const TICK: Duration = Duration::from_millis(50);

/// How often the table is read again (for entries that found no room before).
const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// A status some of whose remote viewers' relays have not taken it yet.
struct Pending {
    expires_at_ms: u64,
    viewers: BTreeSet<UserId>,
    failures: u32,
    not_before: Instant,
    busy: bool,
}

/// What one attempt achieved.
struct Attempt {
    id: EnvelopeId,
    /// Viewers whose relay took the status (or who need no forward any more).
    done: Vec<UserId>,
    /// Whether some viewer's relay could not be reached or found.
    failed: bool,
}

/// The forwarder's state; runs as one task (see [`StatusBoard::forwarder`]).
pub(crate) struct StatusForwarder {
    board: StatusBoard,
    directory: Directory,
    links: Links,
    retry: Retry,
    pending: BTreeMap<EnvelopeId, Pending>,
    loaded: usize,
    cursor: Option<(EnvelopeId, UserId)>,
    tasks: FuturesUnordered<BoxFuture<'static, Attempt>>,
}

impl StatusForwarder {
    pub(super) fn new(
        board: StatusBoard,
        directory: Directory,
        links: Links,
        retry: Retry,
    ) -> Self {
        Self {
            board,
            directory,
            links,
            retry,
            pending: BTreeMap::new(),
            loaded: 0,
            cursor: None,
            tasks: FuturesUnordered::new(),
        }
    }

    /// Runs until `stop`; what is not yet sent stays in the table for the next start.
    pub async fn run(mut self, stop: CancellationToken) {
        let wake = self.board.forward_wake.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.load().await;
        let mut next_reload = Instant::now() + RELOAD_EVERY;
        loop {
            self.expire().await;
            self.dispatch();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake.notified() => self.load().await,
                Some(attempt) = self.tasks.next(), if !self.tasks.is_empty() => {
                    self.on_attempt(attempt).await;
                }
                _ = tick.tick() => {
                    if Instant::now() >= next_reload {
                        next_reload = Instant::now() + RELOAD_EVERY;
                        self.load().await;
                    }
                }
            }
        }
    }

    /// Reads forward entries not yet in memory, while there is room, going once around the
    /// table from where the last read stopped.
    async fn load(&mut self) {
        let mut wrapped = false;
        while self.loaded < MAX_LOADED {
            let limit = LOAD_CHUNK.min(MAX_LOADED - self.loaded);
            let cursor = self.cursor;
            let chunk = match self
                .board
                .blocking(move |db| crate::store::status::forwards_after(db, cursor, limit))
                .await
            {
                Ok(chunk) => chunk,
                Err(error) => {
                    tracing::warn!(%error, "cannot read status forwards; retrying later");
                    return;
                }
            };
            let short = chunk.len() < limit;
            for entry in chunk {
                self.cursor = Some((entry.id, entry.viewer));
                let pending = self.pending.entry(entry.id).or_insert_with(|| Pending {
                    expires_at_ms: entry.expires_at_ms,
                    viewers: BTreeSet::new(),
                    failures: 0,
                    not_before: Instant::now(),
                    busy: false,
                });
                if pending.viewers.insert(entry.viewer) {
                    self.loaded += 1;
                }
            }
            if short {
                self.cursor = None;
                if wrapped {
                    return;
                }
                wrapped = true;
            }
        }
    }

    /// Drops the entries of statuses that expired (not sent, and never sent later).
    async fn expire(&mut self) {
        let now = self.board.clock.now_ms();
        let expired: Vec<EnvelopeId> = self
            .pending
            .iter()
            .filter(|(_, pending)| !pending.busy && pending.expires_at_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let dropped = self
                .board
                .blocking(move |db| crate::store::status::drop_forwards(db, id))
                .await;
            match dropped {
                Ok(()) => {
                    if let Some(pending) = self.pending.remove(&id) {
                        self.loaded = self.loaded.saturating_sub(pending.viewers.len());
                    }
                    tracing::debug!(%id, "a status expired before every relay took it");
                }
                Err(error) => tracing::warn!(%error, "cannot drop an expired status's forwards"),
            }
        }
    }

    /// Starts the attempts whose time has come.
    fn dispatch(&mut self) {
        let now = Instant::now();
        for (id, pending) in self.pending.iter_mut() {
            if self.tasks.len() >= MAX_IN_FLIGHT {
                return;
            }
            if pending.busy || pending.not_before > now {
                continue;
            }
            pending.busy = true;
            let viewers: Vec<UserId> = pending.viewers.iter().copied().collect();
            let (board, directory, links) = (
                self.board.clone(),
                self.directory.clone(),
                self.links.clone(),
            );
            self.tasks
                .push(Box::pin(attempt(board, directory, links, *id, viewers)));
        }
    }

    async fn on_attempt(&mut self, attempt: Attempt) {
        let Attempt {
            id,
            done,
            mut failed,
        } = attempt;
        if !done.is_empty() {
            let viewers = done.clone();
            let recorded = self
                .board
                .blocking(move |db| crate::store::status::forwards_done(db, id, &viewers))
                .await;
            match recorded {
                Ok(()) => {
                    if let Some(pending) = self.pending.get_mut(&id) {
                        for viewer in &done {
                            if pending.viewers.remove(viewer) {
                                self.loaded = self.loaded.saturating_sub(1);
                            }
                        }
                    }
                }
                Err(error) => {
                    // Kept: sent again later, and the other relay dedupes by status id.
                    tracing::warn!(%error, "cannot record forwarded statuses as done");
                    failed = true;
                }
            }
        }
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        pending.busy = false;
        if pending.viewers.is_empty() {
            self.pending.remove(&id);
        } else if failed {
            pending.failures = pending.failures.saturating_add(1);
            pending.not_before = Instant::now() + self.retry.after(pending.failures);
        } else {
            pending.failures = 0;
        }
    }
}

/// Tries once to hand status `id` to the relays of `viewers`: one request per relay.
async fn attempt(
    board: StatusBoard,
    directory: Directory,
    links: Links,
    id: EnvelopeId,
    viewers: Vec<UserId>,
) -> Attempt {
    let held = board
        .blocking(move |db| crate::store::status::post(db, id))
        .await;
    let (poster, post) = match held {
        Ok(Some(held)) => held,
        // Swept meanwhile: nothing left to send.
        Ok(None) => {
            return Attempt {
                id,
                done: viewers,
                failed: false,
            };
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read a status to forward");
            return Attempt {
                id,
                done: Vec::new(),
                failed: true,
            };
        }
    };
    let mut done = Vec::new();
    let mut failed = false;
    let mut by_relay: HashMap<PeerId, (Remote, Vec<UserId>)> = HashMap::new();
    let budget = LookupBudget::unbounded();
    for viewer in viewers {
        match directory.resolve_within(viewer, &budget).await {
            Ok(Home::Remote(remote)) => {
                by_relay
                    .entry(remote.peer)
                    .or_insert_with(|| (remote, Vec::new()))
                    .1
                    .push(viewer);
            }
            // Moved here: the inbox entry was written with the status.
            Ok(Home::Local) => done.push(viewer),
            Ok(Home::Unknown) => {
                tracing::debug!(user = %viewer, "no home known yet for a status viewer");
                failed = true;
            }
            Err(error) => {
                tracing::warn!(%error, "resolving a status viewer");
                failed = true;
            }
        }
    }
    for (remote, users) in by_relay.into_values() {
        if board.clock.now_ms() >= post.expires_at_ms {
            // Left for the expiry pass, which drops the entries.
            return Attempt {
                id,
                done,
                failed: true,
            };
        }
        match send(&links, &remote, poster, &post, &users).await {
            Sent::Taken => done.extend(users),
            Sent::Refused => done.extend(users),
            Sent::Failed => {
                failed = true;
                for user in &users {
                    directory.invalidate(user).await;
                }
            }
        }
    }
    Attempt { id, done, failed }
}

enum Sent {
    /// The relay took it (or had it).
    Taken,
    /// The relay will never take it; not sent again.
    Refused,
    /// Try again later.
    Failed,
}

async fn send(
    links: &Links,
    remote: &Remote,
    poster: Address,
    post: &StatusPost,
    users: &[UserId],
) -> Sent {
    let Ok(audience) = BoundedVec::new(users.to_vec()) else {
        return Sent::Refused;
    };
    let request = FederationRequest::StatusForward {
        poster,
        post: Box::new(StatusPost {
            audience,
            ..post.clone()
        }),
    };
    match links.request(remote, request).await {
        Ok(FederationResponse::StatusStored(_)) => Sent::Taken,
        Ok(other) => {
            tracing::warn!(peer = %remote.peer, ?other, "odd answer to a status");
            Sent::Failed
        }
        Err(LinkError::Refused(answer))
            if matches!(answer.code, ErrorCode::Malformed | ErrorCode::IdReused) =>
        {
            tracing::info!(peer = %remote.peer, %answer, "a relay refused a status for good");
            Sent::Refused
        }
        Err(error) => {
            tracing::debug!(peer = %remote.peer, %error, "status forward failed; retrying later");
            Sent::Failed
        }
    }
}
