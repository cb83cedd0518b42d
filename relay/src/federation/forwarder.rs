//! The forwarder: delivers the durable outbox to other relays, in order, until acked.
//!
//! Every outbox entry stays in redb until the recipient's home relay answers that it
//! committed it. Per destination relay up to `relay_queue::LANES` batches are in flight;
//! a sender's entries all go in one lane, oldest first, so one sender's envelopes to one
//! user keep their order. A failed send backs off exponentially with jitter, forgets the
//! cached route of the batch's recipients and looks them up again; a relay that connects
//! again ends its pause at once. What cannot be delivered within `undeliverable_after` is
//! bounced into the sender's mailbox.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use libp2p::PeerId;
use tidings_protocol::{
    EnvelopeId, ErrorAnswer, ErrorCode, UserId, client::SendOutcome,
    federation::MAX_FORWARD_RECIPIENTS, limits::MAX_BATCH_ENVELOPES, now_ms,
};
use tokio::{sync::broadcast, time::Instant};

use tokio_util::sync::CancellationToken;

use super::{
    Directory, Links,
    batch::{self, Courier},
    directory::Home,
    link_stream::LinkError,
    relay_queue::RelayQueue,
};
use crate::{
    metrics::Metrics,
    retry::Retry,
    store::{OutboxMeta, Store},
};

/// Outbox entries read from the store at a time.
const LOAD_CHUNK: usize = 4096;

/// Home lookups the forwarder runs at once.
const MAX_LOOKUPS_IN_FLIGHT: usize = 64;

/// Longest a batch waits for the other recipients of its envelopes to be looked up. Only
/// cold routes wait (a cached route resolves at once); the DHT query itself gives up at 10 s.
const GATHER_MS: u64 = 5000;

/// How often the forwarder looks at timers even when nothing happens.
const TICK: Duration = Duration::from_millis(50);

/// Waiting to learn where a recipient lives.
#[derive(Default)]
struct Unrouted {
    seqs: BTreeSet<u64>,
    failures: u32,
    not_before: Option<Instant>,
    /// The relay whose failure sent them here, if one did: its return ends the pause.
    failed_at: Option<PeerId>,
}

enum Done {
    Resolved(UserId, Result<Home, String>),
    Sent {
        peer: PeerId,
        lane: usize,
        seqs: Vec<u64>,
        result: Result<Vec<SendOutcome>, LinkError>,
    },
}

/// The forwarder's state; runs as one task.
pub(crate) struct Forwarder {
    /// Store, links and metrics, which the batch tasks use too.
    courier: Arc<Courier>,
    directory: Directory,
    shutdown: CancellationToken,
    undeliverable_after_ms: u64,
    retry: Retry,
    entries: BTreeMap<u64, OutboxMeta>,
    loaded_up_to: u64,
    routes: HashMap<UserId, PeerId>,
    unrouted: HashMap<UserId, Unrouted>,
    resolving: HashSet<UserId>,
    relays: HashMap<PeerId, RelayQueue>,
    tasks: FuturesUnordered<BoxFuture<'static, Done>>,
}

impl Forwarder {
    pub fn new(
        store: Store,
        directory: Directory,
        links: Links,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        undeliverable_after: Duration,
        retry: Retry,
    ) -> Self {
        Self {
            courier: Arc::new(Courier {
                store,
                links,
                metrics,
            }),
            directory,
            shutdown,
            undeliverable_after_ms: undeliverable_after.as_millis() as u64,
            retry,
            entries: BTreeMap::new(),
            loaded_up_to: 0,
            routes: HashMap::new(),
            unrouted: HashMap::new(),
            resolving: HashSet::new(),
            relays: HashMap::new(),
            tasks: FuturesUnordered::new(),
        }
    }

    /// Runs until the relay stops; everything not yet acked stays in the outbox.
    pub async fn run(mut self) {
        let notify = self.courier.store.outbox_notify();
        let shutdown = self.shutdown.clone();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut relays_up = self.courier.links.relays_up();
        let mut hear_relays = true;
        self.load().await;
        loop {
            self.expire().await;
            self.dispatch();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = notify.notified() => self.load().await,
                up = relays_up.recv(), if hear_relays => match up {
                    Ok(peer) => self.relay_up(peer),
                    // Missed notices only delay: those relays' pauses end on their own. (Waking
                    // every relay here would let anyone who connects often cause retry storms.)
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "relay-up notices missed");
                    }
                    Err(broadcast::error::RecvError::Closed) => hear_relays = false,
                },
                Some(done) = self.tasks.next(), if !self.tasks.is_empty() => self.on_done(done).await,
                _ = tick.tick() => {}
            }
        }
    }

    /// `peer` connected again: whatever waits on a pause after it failed is tried at once.
    /// Only a relay that failed has anything to wake (one scan per failure, however often a
    /// peer reconnects).
    fn relay_up(&mut self, peer: PeerId) {
        let Some(relay) = self.relays.get_mut(&peer) else {
            return;
        };
        if !relay.link_up(Instant::now()) {
            return;
        }
        for waiting in self.unrouted.values_mut() {
            if waiting.failed_at == Some(peer) {
                waiting.not_before = None;
                waiting.failed_at = None;
            }
        }
    }

    /// Reads outbox entries newer than what is loaded.
    async fn load(&mut self) {
        loop {
            let chunk = match self
                .courier
                .store
                .outbox_after(self.loaded_up_to, LOAD_CHUNK)
                .await
            {
                Ok(chunk) => chunk,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the outbox; retrying later");
                    return;
                }
            };
            let full = chunk.len() == LOAD_CHUNK;
            for (seq, meta) in chunk {
                self.loaded_up_to = self.loaded_up_to.max(seq);
                self.entries.insert(seq, meta);
                self.route(seq, meta);
            }
            if !full {
                return;
            }
        }
    }

    fn route(&mut self, seq: u64, meta: OutboxMeta) {
        match self
            .routes
            .get(&meta.recipient)
            .and_then(|peer| self.relays.get_mut(peer))
        {
            Some(relay) => relay.insert(seq, &meta.sender),
            None => {
                let waiting = self.unrouted.entry(meta.recipient).or_default();
                waiting.seqs.insert(seq);
            }
        }
    }

    /// Starts lookups and sends whose time has come.
    fn dispatch(&mut self) {
        let now = Instant::now();
        let room = MAX_LOOKUPS_IN_FLIGHT.saturating_sub(self.resolving.len());
        let ready: Vec<UserId> = self
            .unrouted
            .iter()
            .filter(|(user, waiting)| {
                !waiting.seqs.is_empty()
                    && !self.resolving.contains(*user)
                    && waiting.not_before.is_none_or(|at| at <= now)
            })
            .map(|(user, _)| *user)
            .take(room)
            .collect();
        for user in ready {
            self.resolving.insert(user);
            let directory = self.directory.clone();
            self.tasks.push(Box::pin(async move {
                let home = directory
                    .resolve(user)
                    .await
                    .map_err(|error| error.to_string());
                Done::Resolved(user, home)
            }));
        }
        // Envelopes some of whose recipients are still being looked up: a relay's batch waits
        // a moment for them, so a group message reaches each relay in one batch.
        let resolving_ids: HashSet<EnvelopeId> = self
            .unrouted
            .iter()
            .filter(|(user, waiting)| {
                self.resolving.contains(*user) || waiting.not_before.is_none_or(|at| at <= now)
            })
            .flat_map(|(_, waiting)| waiting.seqs.iter())
            .filter_map(|seq| self.entries.get(seq).map(|meta| meta.id))
            .collect();
        let now_ms = now_ms();
        let gathering = |queue: &BTreeSet<u64>| {
            let first = queue.iter().take(MAX_BATCH_ENVELOPES);
            first.filter_map(|seq| self.entries.get(seq)).any(|meta| {
                resolving_ids.contains(&meta.id)
                    && now_ms.saturating_sub(meta.accepted_at_ms) < GATHER_MS
            })
        };
        let idle: Vec<(PeerId, usize)> = self
            .relays
            .iter()
            .flat_map(|(peer, relay)| {
                relay
                    .ready_lanes(now)
                    .filter(|(_, queue)| !gathering(queue))
                    .map(|(lane, _)| (*peer, lane))
            })
            .collect();
        for (peer, lane) in idle {
            self.send(peer, lane);
        }
    }

    fn send(&mut self, peer: PeerId, lane: usize) {
        let Some(relay) = self.relays.get_mut(&peer) else {
            return;
        };
        let Some(queue) = relay.lanes.get(lane) else {
            return;
        };
        let entries: Vec<(u64, OutboxMeta)> = queue
            .queue
            .iter()
            .take(MAX_FORWARD_RECIPIENTS)
            .filter_map(|seq| self.entries.get(seq).map(|meta| (*seq, *meta)))
            .collect();
        relay.sent(lane, Instant::now());
        let remote = relay.remote.clone();
        let courier = self.courier.clone();
        self.tasks.push(Box::pin(async move {
            let (seqs, result) = batch::forward(&courier, &remote, entries).await;
            Done::Sent {
                peer,
                lane,
                seqs,
                result,
            }
        }));
    }

    async fn on_done(&mut self, done: Done) {
        match done {
            Done::Resolved(user, home) => self.on_resolved(user, home).await,
            Done::Sent {
                peer,
                lane,
                seqs,
                result,
            } => self.on_sent(peer, lane, seqs, result).await,
        }
    }

    async fn on_resolved(&mut self, user: UserId, home: Result<Home, String>) {
        self.resolving.remove(&user);
        match home {
            Ok(Home::Remote(remote)) => {
                let peer = remote.peer;
                let relay = self
                    .relays
                    .entry(peer)
                    .or_insert_with(|| RelayQueue::new(remote.clone()));
                relay.remote = remote;
                if let Some(waiting) = self.unrouted.remove(&user) {
                    for seq in waiting.seqs {
                        if let Some(meta) = self.entries.get(&seq) {
                            relay.insert(seq, &meta.sender);
                        }
                    }
                }
                self.routes.insert(user, peer);
            }
            Ok(Home::Local) => {
                // The recipient lives here now (moved in, or registered after it was queued).
                let Some(waiting) = self.unrouted.remove(&user) else {
                    return;
                };
                let seqs: Vec<u64> = waiting.seqs.into_iter().collect();
                match self.courier.store.outbox_to_mailbox(seqs.clone()).await {
                    Ok(()) => {
                        for seq in seqs {
                            self.entries.remove(&seq);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot move outbox entries to a local mailbox");
                        self.retry_later(user, seqs);
                    }
                }
            }
            Ok(Home::Unknown) if matches!(self.courier.store.was_removed(user).await, Ok(true)) => {
                // The operator removed the user here and no newer home is known.
                let seqs = self
                    .unrouted
                    .remove(&user)
                    .map(|w| w.seqs)
                    .unwrap_or_default();
                for seq in seqs {
                    let reason = ErrorAnswer::new(
                        ErrorCode::UnknownRecipient,
                        "no such user: their relay's operator removed them",
                    );
                    self.bounce(seq, reason).await;
                }
            }
            Ok(Home::Unknown) | Err(_) => {
                if let Err(error) = &home {
                    tracing::warn!(%user, %error, "looking up a home relay failed");
                }
                let waiting = self.unrouted.entry(user).or_default();
                waiting.failures += 1;
                waiting.not_before = Some(Instant::now() + self.retry.after(waiting.failures));
            }
        }
    }

    fn retry_later(&mut self, user: UserId, seqs: Vec<u64>) {
        let waiting = self.unrouted.entry(user).or_default();
        waiting.seqs.extend(seqs);
        waiting.failures += 1;
        waiting.not_before = Some(Instant::now() + self.retry.after(waiting.failures));
    }

    async fn on_sent(
        &mut self,
        peer: PeerId,
        lane: usize,
        seqs: Vec<u64>,
        result: Result<Vec<SendOutcome>, LinkError>,
    ) {
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(error) => {
                tracing::info!(%peer, %error, "forwarding failed; backing off and looking up again");
                self.relay_failed(peer, lane, &seqs).await;
                return;
            }
        };
        let mut done = Vec::new();
        let mut reroute = Vec::new();
        let mut bounces = Vec::new();
        let mut retry = false;
        for (seq, outcome) in seqs.iter().zip(outcomes) {
            match outcome {
                SendOutcome::Accepted | SendOutcome::Duplicate => done.push(*seq),
                SendOutcome::Rejected(answer) if answer.code == ErrorCode::WrongRelay => {
                    reroute.push(*seq)
                }
                SendOutcome::Rejected(answer)
                    if answer.code.is_transient() || answer.code == ErrorCode::QuotaExceeded =>
                {
                    retry = true;
                    break;
                }
                SendOutcome::Rejected(answer) => bounces.push((*seq, answer)),
            }
        }
        if !done.is_empty() {
            if let Err(error) = self.courier.store.outbox_done(done.clone()).await {
                // Left in the outbox: sent again later and deduped by the remote relay.
                tracing::warn!(%error, "cannot record forwarded envelopes as done");
            } else {
                self.forget(&done);
            }
        }
        for (seq, answer) in bounces {
            self.bounce(seq, answer).await;
        }
        for seq in reroute {
            if let Some(meta) = self.entries.get(&seq).copied() {
                self.unroute(meta.recipient).await;
            }
        }
        if let Some(relay) = self.relays.get_mut(&peer) {
            relay.answered(lane, retry, Instant::now(), |failures| {
                self.retry.after(failures)
            });
        }
    }

    /// After a failed send: back off, and look up the batch's recipients again.
    async fn relay_failed(&mut self, peer: PeerId, lane: usize, seqs: &[u64]) {
        let recipients: HashSet<UserId> = seqs
            .iter()
            .filter_map(|seq| self.entries.get(seq).map(|meta| meta.recipient))
            .collect();
        self.courier.metrics.forward_failed();
        let failures = match self.relays.get_mut(&peer) {
            Some(relay) => {
                relay.parked = true;
                relay.failed(lane, Instant::now(), |failures| self.retry.after(failures))
            }
            None => 1,
        };
        for user in recipients {
            self.unroute(user).await;
            if let Some(waiting) = self.unrouted.get_mut(&user) {
                waiting.failures = failures;
                waiting.not_before = Some(Instant::now() + self.retry.after(failures));
                waiting.failed_at = Some(peer);
            }
        }
    }

    /// Forgets where `user` lives and moves their entries back to waiting.
    async fn unroute(&mut self, user: UserId) {
        self.directory.invalidate(&user).await;
        let Some(peer) = self.routes.remove(&user) else {
            return;
        };
        let Some(relay) = self.relays.get_mut(&peer) else {
            return;
        };
        let theirs: Vec<(u64, UserId)> = relay
            .queued()
            .filter_map(|seq| {
                let meta = self.entries.get(&seq)?;
                (meta.recipient == user).then_some((seq, meta.sender))
            })
            .collect();
        for (seq, sender) in &theirs {
            relay.remove(*seq, sender);
        }
        let theirs = theirs.into_iter().map(|(seq, _)| seq);
        self.unrouted.entry(user).or_default().seqs.extend(theirs);
    }

    fn forget(&mut self, seqs: &[u64]) {
        for seq in seqs {
            let Some(meta) = self.entries.remove(seq) else {
                continue;
            };
            if let Some(relay) = self
                .routes
                .get(&meta.recipient)
                .and_then(|p| self.relays.get_mut(p))
            {
                relay.remove(*seq, &meta.sender);
            }
            if let Some(waiting) = self.unrouted.get_mut(&meta.recipient) {
                waiting.seqs.remove(seq);
            }
        }
        self.unrouted.retain(|_, waiting| !waiting.seqs.is_empty());
    }

    async fn bounce(&mut self, seq: u64, reason: ErrorAnswer) {
        match self.courier.store.bounce(seq, reason).await {
            Ok(()) => self.forget(&[seq]),
            Err(error) => tracing::warn!(%error, "cannot record a bounce; retrying later"),
        }
    }

    /// Bounces entries older than `undeliverable_after`.
    async fn expire(&mut self) {
        let deadline = now_ms().saturating_sub(self.undeliverable_after_ms);
        let expired: Vec<u64> = self
            .entries
            .iter()
            .take_while(|(_, meta)| meta.accepted_at_ms < deadline)
            .map(|(seq, _)| *seq)
            .take(MAX_BATCH_ENVELOPES)
            .collect();
        for seq in expired {
            let reason = ErrorAnswer::new(
                ErrorCode::Undeliverable,
                "the recipient's relay could not be reached in time",
            );
            self.bounce(seq, reason).await;
        }
    }
}
