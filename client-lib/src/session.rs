//! [`Session`]: a live connection to the home relay: send in order, receive, ack, receipts.

use std::{collections::VecDeque, time::Duration};

use crate::runtime::Instant;

use tidings_protocol::{
    ErrorCode, MailboxItem, UserId,
    client::{Delivery, Register},
    content::GroupHeld,
    mux::MuxError,
};

use crate::{
    calls::Subscribe,
    client::Client,
    connection::{Connection, ConnectionError, Push},
    device_lists::{refresh_for_senders, refresh_list},
    error::ClientError,
    events::{Event, typing_event},
    flush::{FlushReport, Flusher},
    group_sync::{changes_in, fill_group_gaps},
    held_back::{HeldBack, unreachable_senders},
    home::refresh_home,
    key_upload::{publish_keys, top_up_keys},
    store::{MessageRecord, MessageStatus, Received, StoreError},
};

/// First and longest pause before a listening session retries entries that wait (a
/// recipient without keys yet, a relay asking to retry later).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A pushed batch on its way into the store.
struct Storing {
    /// Its last sequence number (what to ack).
    last: u64,
    /// The batch itself, to store again if storing failed: a later cumulative ack must
    /// never cover it unstored.
    items: Vec<Delivery>,
    task: crate::runtime::JoinHandle<Result<Received, StoreError>>,
}

/// A live connection to the home relay.
pub struct Session {
    client: Client,
    connection: Connection,
    events: VecDeque<Event>,
    /// A pushed batch not yet handed to the store.
    unprocessed: Option<Vec<Delivery>>,
    /// A batch being stored, on the blocking pool; the handle is awaited again after a
    /// cancelled `next_event`, so neither the batch nor its events are lost.
    storing: Option<Storing>,
    /// The last sequence number of a stored batch whose ack is still due.
    unacked: Option<u64>,
    /// A stored batch queued receipts: the outbox must be sent (again, if a send was cut).
    flush_due: bool,
    /// Groups another device of ours named that this one must fetch from the relay.
    groups_due: Vec<GroupHeld>,
    /// Users who said their device list changed: their list is asked for (once each).
    lists_due: Vec<UserId>,
    /// The relay said "caught up"; the outbox flush and the event are still due.
    caught_up: bool,
    /// When to flush again because entries wait, and the pause after that one.
    retry_at: Option<Instant>,
    retry_pause: Duration,
    /// Envelopes held back until their senders' device lists can be fetched.
    held: HeldBack,
}

impl Client {
    /// Connects to the home relay. Nothing is received until [`Session::subscribe`].
    pub async fn connect(&self) -> Result<Session, ClientError> {
        let address = self.relay_addr()?.ok_or(ClientError::NotRegistered)?;
        let connection = self.open_connection(address).await?;
        if let Err(error) = publish_keys(self, &connection).await {
            return Err(why_not_registered(self, &connection, error).await);
        }
        refresh_home(self, &connection).await?;
        self.tell_previous_home().await;
        let mut session = Session::new(self.clone(), connection);
        // Our own list, so what we send reaches every device of ours added since.
        refresh_list(
            self,
            &session.connection,
            self.user_id(),
            &mut session.events,
        )
        .await?;
        // Envelopes held back in an earlier run: their senders' lists are asked for again.
        let held = self.blocking(|inner| inner.store.held_back()).await?;
        let users: Vec<UserId> = held.into_iter().map(|(user, _)| user).collect();
        session.held.add(&users);
        Ok(session)
    }
}

/// A relay that answers `not_registered` to a device that was registered there has most
/// likely revoked it: registering again with the certificate alone (never with a list, so a
/// removed device cannot put itself back) answers why, `device_revoked`, which the caller gets
/// instead.
async fn why_not_registered(
    client: &Client,
    connection: &Connection,
    error: ClientError,
) -> ClientError {
    if !matches!(&error, ClientError::Refused(answer) if answer.code == ErrorCode::NotRegistered) {
        return error;
    }
    let again = Register {
        cert: client.inner.identity.cert().clone(),
        invite: None,
        list: None,
    };
    match connection.call(again).await {
        Err(refused) => refused.into(),
        Ok(_) => error,
    }
}

impl Session {
    fn new(client: Client, connection: Connection) -> Self {
        Self {
            client,
            connection,
            events: VecDeque::new(),
            unprocessed: None,
            storing: None,
            unacked: None,
            flush_due: false,
            groups_due: Vec::new(),
            lists_due: Vec::new(),
            caught_up: false,
            retry_at: None,
            retry_pause: RETRY_FIRST,
            held: HeldBack::default(),
        }
    }

    /// Takes in what storing a batch (or settling held envelopes) produced.
    fn absorb(&mut self, received: Received) {
        self.events.extend(received.events);
        self.groups_due.extend(received.groups_behind);
        for user in received.lists_changed {
            if !self.client.inner.list_checks.noticed(user) {
                tracing::debug!(%user, "a device list notice inside the lookup gap");
                continue;
            }
            if !self.lists_due.contains(&user) {
                self.lists_due.push(user);
            }
        }
        self.held.add(&received.held_back);
    }

    /// Queues a text for `who` and sends everything pending; returns the message with its
    /// status (✓ `Sent` once the relay durably holds it; `Pending` if it must wait).
    pub async fn send_text(&mut self, who: &str, text: &str) -> Result<MessageRecord, ClientError> {
        let record = self.client.queue_text(who, text).await?;
        self.flush_and_find(record).await
    }

    /// Sends everything pending; returns the queued `record` with its status after.
    pub(crate) async fn flush_and_find(
        &mut self,
        record: MessageRecord,
    ) -> Result<MessageRecord, ClientError> {
        let report = self.flush().await?;
        let id = record.id;
        Ok(report
            .sent
            .into_iter()
            .chain(report.failed)
            .find(|sent| sent.id == id)
            .unwrap_or(record))
    }

    /// Marks everything from `who` read and sends the read receipt; returns how many.
    pub async fn mark_read(&mut self, who: &str) -> Result<usize, ClientError> {
        let count = self.client.mark_read(who).await?;
        self.flush().await?;
        Ok(count)
    }

    /// Sends the outbox in order. Entries for a recipient that cannot be served yet wait, and
    /// so do their later entries; a transient refusal stops the flush (retried next time).
    ///
    /// Sessions of one client flush one at a time. (Another process on the same data dir may
    /// flush at once: every request carries the oldest unfinished entries first, so the relay
    /// still sees each conversation in order, and repeats are answered `Duplicate`.)
    ///
    /// While entries wait, [`Session::next_event`] flushes again after a pause (1 s,
    /// doubling to 60 s).
    pub async fn flush(&mut self) -> Result<FlushReport, ClientError> {
        crate::profile::sync::before_flush(&self.client, &self.connection).await;
        let report = Flusher {
            client: &self.client,
            connection: &self.connection,
            events: &mut self.events,
        }
        .flush_once()
        .await?;
        if report.waiting.is_empty() {
            self.retry_at = None;
            self.retry_pause = RETRY_FIRST;
        } else if self.retry_at.is_none_or(|at| Instant::now() >= at) {
            // Back off per failed retry, not per flush: sending several messages in a row
            // must not push the next retry minutes away.
            self.retry_at = Some(Instant::now() + self.retry_pause);
            self.retry_pause = (self.retry_pause * 2).min(RETRY_MAX);
        }
        Ok(report)
    }

    /// Starts receiving: the relay pushes everything after the last ack, then new envelopes.
    pub async fn subscribe(&mut self) -> Result<(), ClientError> {
        let subscribed = match self.connection.call(Subscribe).await {
            Ok(subscribed) => subscribed,
            Err(error) => {
                return Err(why_not_registered(&self.client, &self.connection, error.into()).await);
            }
        };
        if subscribed.heartbeat_ms > 0 {
            self.connection
                .requester()
                .heartbeat(Duration::from_millis(subscribed.heartbeat_ms))
                .await?;
        }
        top_up_keys(&self.client, &self.connection, subscribed.one_time_keys).await
    }

    /// The next event; an error once the connection is lost (reconnect with
    /// [`Client::connect`]: nothing is lost, unacked envelopes come again).
    ///
    /// Cancel-safe: dropping the future loses neither a message nor its event. What was
    /// received is stored before it is acked; a batch whose storing was interrupted is
    /// awaited again on the next call, and its events come then.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        loop {
            if let Some(storing) = &mut self.storing {
                let stored = (&mut storing.task).await;
                let Some(Storing { last, items, .. }) = self.storing.take() else {
                    continue;
                };
                let received = match stored {
                    Ok(Ok(received)) => received,
                    failed => {
                        self.unprocessed = Some(items);
                        failed.map_err(|_| ClientError::Cancelled)??;
                        continue;
                    }
                };
                tracing::trace!(last, "stored a pushed batch");
                self.absorb(received);
                self.unacked = Some(last);
            }
            if let Some(last) = self.unacked {
                // Stored durably: now the relay may delete them; then send the receipts.
                self.connection.requester().ack(last).await?;
                self.unacked = None;
                self.flush_due = true;
            }
            if self.flush_due {
                // Due again only if this call is cancelled mid-flush: an error is reported
                // once and the events still come next call (the outbox keeps the receipts).
                let flushed = self.flush().await;
                self.flush_due = false;
                flushed?;
            }
            if !self.groups_due.is_empty() {
                // Due until fetched: a cancelled call fetches again (only what is missing).
                self.fetch_synced_groups().await?;
            }
            while let Some(user) = self.lists_due.first().copied() {
                // Asked for now, so the next send (and a group key share) already uses it;
                // a cancelled call asks again.
                refresh_list(&self.client, &self.connection, user, &mut self.events).await?;
                self.lists_due.remove(0);
            }
            if self.settle_held().await? {
                continue;
            }
            if let Some(Event::ProfileChanged { user, .. }) = self.events.front() {
                // Fetched before the event is handed out (again if this call is cancelled).
                crate::profile::sync::fetch_quietly(&self.client, &self.connection, *user).await;
            }
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            if let Some(items) = &self.unprocessed {
                // Cancel-safe: the batch stays unprocessed until the gaps are filled, and
                // filling again only asks for what is still missing.
                let changes = changes_in(items);
                fill_group_gaps(&self.client, &self.connection, changes).await?;
                if let Some(items) = &self.unprocessed {
                    refresh_for_senders(&self.client, &self.connection, items, &mut self.events)
                        .await?;
                }
                // A sender whose list just came has their held envelopes taken first, so
                // their messages keep the order they arrived in.
                self.settle_held().await?;
                if let Some(items) = self.unprocessed.take() {
                    self.storing = self.start_storing(items);
                }
                continue;
            }
            if self.caught_up {
                self.flush().await?;
                self.caught_up = false;
                self.events.push_back(Event::CaughtUp);
                continue;
            }
            let wake = match (self.retry_at, self.held.wake_at()) {
                (Some(retry), Some(held)) => Some(retry.min(held)),
                (retry, held) => retry.or(held),
            };
            let push = match wake {
                Some(at) => tokio::select! {
                    push = self.connection.next_push() => Some(push),
                    () = crate::runtime::sleep_until(at) => None,
                },
                None => Some(self.connection.next_push().await),
            };
            let Some(push) = push else {
                if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                    self.flush().await?;
                }
                continue;
            };
            match push {
                Push::Presence(report) => self.events.push_back(Event::Presence {
                    user: report.user,
                    state: report.state,
                }),
                Push::Ephemeral(envelope) => {
                    if let Some(event) = typing_event(&envelope) {
                        self.events.push_back(event);
                    }
                }
                Push::Deliver(items) => self.unprocessed = Some(items),
                Push::CaughtUp { .. } => self.caught_up = true,
                Push::Closed(reason) => {
                    return Err(ClientError::Connection(match reason {
                        Some(answer) => ConnectionError::Lost(MuxError::Fatal(answer)),
                        None => ConnectionError::Closed,
                    }));
                }
            }
        }
    }

    /// Receives everything waiting at the relay (until caught up, or `timeout`), sends the
    /// outbox, and returns what happened.
    pub async fn sync(&mut self, timeout: Duration) -> Result<Vec<Event>, ClientError> {
        self.subscribe().await?;
        let mut events = Vec::new();
        let deadline = Instant::now() + timeout;
        while let Ok(event) = crate::runtime::timeout_at(deadline, self.next_event()).await {
            let event = event?;
            let done = event == Event::CaughtUp;
            events.push(event);
            if done {
                break;
            }
        }
        self.flush().await?;
        events.extend(self.events.drain(..));
        Ok(events)
    }

    /// Settles held-back envelopes if due (a list came, or the retry time did); whether
    /// anything was settled. Replayed messages are stored: their receipts go out as for live
    /// ones.
    async fn settle_held(&mut self) -> Result<bool, ClientError> {
        if !self.held.is_due(&self.client) {
            return Ok(false);
        }
        let settled = self
            .held
            .settle(&self.client, &self.connection, &mut self.events)
            .await?;
        let Some(received) = settled else {
            return Ok(false);
        };
        self.absorb(received);
        self.flush_due = true;
        Ok(true)
    }

    /// Fetches the descriptor chains of groups another device of ours is in, and reports
    /// each group this device now holds.
    async fn fetch_synced_groups(&mut self) -> Result<(), ClientError> {
        let changes = self
            .groups_due
            .iter()
            .map(|held| (held.group, held.version.saturating_add(1)))
            .collect();
        fill_group_gaps(&self.client, &self.connection, changes).await?;
        for held in std::mem::take(&mut self.groups_due) {
            if let Some(known) = self.client.store().group(&held.group)? {
                self.events.push_back(Event::GroupChanged {
                    group: held.group,
                    version: known.descriptor.version,
                    summary: format!(
                        "group {:?} synced from another device of yours",
                        known.descriptor.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Verifies a pushed batch and starts decrypting and storing it on the blocking pool.
    fn start_storing(&self, items: Vec<Delivery>) -> Option<Storing> {
        let last = items.last()?.seq;
        let mut envelopes = Vec::with_capacity(items.len());
        let mut bounces = Vec::new();
        for item in items.iter().cloned() {
            match item.item {
                MailboxItem::Envelope(raw) => match raw.open() {
                    Ok(envelope) => envelopes.push((envelope, raw)),
                    Err(error) => {
                        // Not attributable to anyone: the signature does not hold.
                        tracing::warn!(seq = item.seq, %error, "dropping an envelope that does not verify");
                    }
                },
                MailboxItem::Bounce(bounce) => bounces.push(bounce),
            }
        }
        let unreachable = unreachable_senders(&self.client, &envelopes);
        let task = self.client.spawn_blocking(move |inner| {
            inner
                .store
                .receive_holding(&inner.identity, &envelopes, &bounces, &unreachable)
        });
        Some(Storing { last, items, task })
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The client this session belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Closes the connection.
    pub async fn close(self) {
        drop(self.connection);
    }
}

impl MessageStatus {
    /// Whether the home relay holds the message (✓ or better).
    pub fn is_sent(&self) -> bool {
        matches!(
            self,
            MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
        )
    }
}
