//! [`Session`]: a live connection to the home relay: send in order, receive, ack, receipts.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Duration,
};

use tokio::time::Instant;

use tidings_protocol::{
    BoundedVec, DeviceId, EnvelopeId, ErrorCode, GroupId, MailboxItem, RawEnvelope, UserId,
    client::{Delivery, Request, Response, SendOutcome},
    limits::{MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES},
};

use crate::{
    client::{Client, ClientError, ConnectionErrorOrRefused, ONE_TIME_KEY_BATCH},
    connection::{Connection, Push},
    events::Event,
    store::{
        Conversation, MessageRecord, MessageStatus, OutboxEntry, Received, StoreError,
        outbox::Finished, tables::OutboxContent,
    },
};

/// Top up one-time keys on the relay when fewer than this are left.
const ONE_TIME_KEY_LOW_WATER: u32 = 20;

/// Most envelope bytes in one `Send` request.
const SEND_MAX_BYTES: usize = MAX_FRAME_BYTES / 2;

/// First and longest pause before a listening session retries entries that wait (a
/// recipient without keys yet, a relay asking to retry later).
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What one flush of the outbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    /// Messages the relay accepted (✓) in this flush.
    pub sent: Vec<MessageRecord>,
    /// Messages the relay refused for good.
    pub failed: Vec<MessageRecord>,
    /// Why some entries are still waiting (e.g. a recipient without keys), if any.
    pub waiting: Vec<String>,
    /// Entries the relay refused for good (envelope id, reason): group changes among them.
    pub refused: Vec<(EnvelopeId, String)>,
}

/// Why one entry could not be sealed now.
pub(crate) enum SealError {
    /// Try again later; keep this recipient's later entries waiting too (order).
    Wait(String),
    /// Give up on this entry.
    Fail(String),
    /// The session itself failed.
    Client(ClientError),
}

impl From<ClientError> for SealError {
    fn from(error: ClientError) -> Self {
        SealError::Client(error)
    }
}

/// A pushed batch on its way into the store.
struct Storing {
    /// Its last sequence number (what to ack).
    last: u64,
    /// The batch itself, to store again if storing failed: a later cumulative ack must
    /// never cover it unstored.
    items: Vec<Delivery>,
    task: tokio::task::JoinHandle<Result<Received, StoreError>>,
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
    /// The relay said "caught up"; the outbox flush and the event are still due.
    caught_up: bool,
    /// When to flush again because entries wait, and the pause after that one.
    retry_at: Option<Instant>,
    retry_pause: Duration,
}

impl Session {
    pub(crate) fn new(client: Client, connection: Connection) -> Self {
        Self {
            client,
            connection,
            events: VecDeque::new(),
            unprocessed: None,
            storing: None,
            unacked: None,
            flush_due: false,
            caught_up: false,
            retry_at: None,
            retry_pause: RETRY_FIRST,
        }
    }

    async fn request(&self, request: Request) -> Result<Response, ClientError> {
        Ok(self
            .connection
            .request(request)
            .await
            .map_err(ConnectionErrorOrRefused)?)
    }

    /// Publishes the identity key and first one-time keys if the relay never got them.
    pub(crate) async fn publish_keys(&self) -> Result<(), ClientError> {
        let upload = self
            .client
            .blocking(|inner| {
                inner
                    .store
                    .keys_to_publish(&inner.identity, ONE_TIME_KEY_BATCH)
            })
            .await?;
        if let Some(upload) = upload {
            self.request(Request::UploadKeys(Box::new(upload))).await?;
            self.client
                .blocking(|inner| inner.store.set_keys_published())
                .await?;
        }
        Ok(())
    }

    async fn top_up_keys(&self, held: u32) -> Result<(), ClientError> {
        if held >= ONE_TIME_KEY_LOW_WATER {
            return Ok(());
        }
        let upload = self
            .client
            .blocking(|inner| {
                inner
                    .store
                    .more_one_time_keys(&inner.identity, ONE_TIME_KEY_BATCH)
            })
            .await?;
        self.request(Request::UploadKeys(Box::new(upload))).await?;
        Ok(())
    }

    /// Queues a text for `who` and sends everything pending; returns the message with its
    /// status (✓ `Sent` once the relay durably holds it; `Pending` if it must wait).
    pub async fn send_text(&mut self, who: &str, text: &str) -> Result<MessageRecord, ClientError> {
        let record = self.client.queue_text(who, text).await?;
        let report = self.flush().await?;
        let id = record.id;
        Ok(report
            .sent
            .into_iter()
            .chain(report.failed)
            .find(|sent| sent.id == id)
            .unwrap_or(record))
    }

    pub(crate) async fn request_pub(&self, request: Request) -> Result<Response, ClientError> {
        self.request(request).await
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
        let report = self.flush_once().await?;
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

    async fn flush_once(&mut self) -> Result<FlushReport, ClientError> {
        let lock = self.client.inner.flushing.clone();
        let _flushing = lock.lock().await;
        let mut report = FlushReport::default();
        let mut waiting: HashSet<Conversation> = HashSet::new();
        let mut keyed: HashSet<GroupId> = HashSet::new();
        let mut devices: HashMap<UserId, DeviceId> = HashMap::new();
        loop {
            let pending = self
                .client
                .blocking(|inner| inner.store.pending(4 * MAX_BATCH_ENVELOPES))
                .await?;
            // Choose a batch, finding each recipient's device first (network, for a new
            // peer), then seal what is not sealed yet in one local commit.
            let mut chosen: Vec<(u64, OutboxEntry)> = Vec::new();
            let mut to_seal: Vec<(u64, Option<DeviceId>)> = Vec::new();
            for (seq, entry) in pending {
                if chosen.len() == MAX_BATCH_ENVELOPES {
                    break;
                }
                if waiting.contains(&entry.to) {
                    continue;
                }
                if entry.sealed.is_none() {
                    match self.prepare(&entry, &mut keyed, &mut devices).await {
                        Ok(device) => to_seal.push((seq, device)),
                        Err(SealError::Wait(reason)) => {
                            waiting.insert(entry.to);
                            report.waiting.push(reason);
                            continue;
                        }
                        Err(SealError::Fail(reason)) => {
                            let failed = vec![(seq, entry.id, Finished::Failed(reason))];
                            self.finish(failed, &mut report).await?;
                            continue;
                        }
                        Err(SealError::Client(error)) => return Err(error),
                    }
                }
                chosen.push((seq, entry));
            }
            let mut sealed_now = if to_seal.is_empty() {
                Vec::new()
            } else {
                self.client
                    .blocking(move |inner| inner.store.seal_many(&inner.identity, &to_seal))
                    .await?
            }
            .into_iter();
            let mut batch: Vec<(u64, OutboxEntry, RawEnvelope)> = Vec::new();
            let mut bytes = 0;
            for (seq, entry) in chosen {
                let sealed = match entry.sealed.clone() {
                    Some(sealed) => sealed,
                    None => sealed_now
                        .next()
                        .ok_or_else(|| ClientError::Unexpected("an entry was not sealed".into()))?,
                };
                // What does not fit stays sealed in the outbox for the next request.
                if !batch.is_empty() && bytes + sealed.len() > SEND_MAX_BYTES {
                    break;
                }
                bytes += sealed.len();
                batch.push((seq, entry, sealed));
            }
            if batch.is_empty() {
                return Ok(report);
            }
            let envelopes = batch.iter().map(|(_, _, sealed)| sealed.clone()).collect();
            let envelopes = BoundedVec::new(envelopes)
                .map_err(|error| ClientError::Unexpected(error.to_string()))?;
            let outcomes = match self.request(Request::Send { envelopes }).await? {
                Response::Sent { outcomes } => outcomes.into_vec(),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            };
            let mut stop = false;
            let mut finished = Vec::with_capacity(batch.len());
            for ((seq, entry, _), outcome) in batch.into_iter().zip(outcomes) {
                match outcome {
                    SendOutcome::Accepted | SendOutcome::Duplicate => {
                        finished.push((seq, entry.id, Finished::Sent));
                    }
                    SendOutcome::Rejected(answer) if answer.code.is_transient() => {
                        tracing::info!(%answer, "relay asked to retry later");
                        report.waiting.push(answer.to_string());
                        waiting.insert(entry.to);
                        stop = true;
                    }
                    SendOutcome::Rejected(answer) => {
                        report.refused.push((entry.id, answer.to_string()));
                        finished.push((seq, entry.id, Finished::Failed(answer.to_string())));
                    }
                }
            }
            self.finish(finished, &mut report).await?;
            if stop {
                return Ok(report);
            }
        }
    }

    /// Removes finished entries from the outbox in one local commit, moving their messages'
    /// ticks, and reports them.
    async fn finish(
        &mut self,
        entries: Vec<(u64, EnvelopeId, Finished)>,
        report: &mut FlushReport,
    ) -> Result<(), ClientError> {
        if entries.is_empty() {
            return Ok(());
        }
        let sent: Vec<bool> = entries
            .iter()
            .map(|(_, _, finished)| *finished == Finished::Sent)
            .collect();
        let records = self
            .client
            .blocking(move |inner| inner.store.finish_many(entries))
            .await?;
        for (record, sent) in records.into_iter().zip(sent) {
            let Some(record) = record else { continue };
            self.events.push_back(Event::Status {
                peer: record.peer,
                id: record.id,
                status: record.status.clone(),
            });
            if sent {
                report.sent.push(record);
            } else {
                report.failed.push(record);
            }
        }
        Ok(())
    }

    /// What sealing an entry needs first: a user's device (opening an Olm session from a
    /// claimed bundle if there is none yet; remembered per flush), or, for a group message,
    /// that every member holds the current session key (once per flush per group).
    async fn prepare(
        &self,
        entry: &OutboxEntry,
        keyed: &mut HashSet<GroupId>,
        devices: &mut HashMap<UserId, DeviceId>,
    ) -> Result<Option<DeviceId>, SealError> {
        match (entry.to, &entry.content) {
            (Conversation::Direct(to), _) => {
                if let Some(device) = devices.get(&to) {
                    return Ok(Some(*device));
                }
                let known = self
                    .client
                    .blocking(move |inner| inner.store.device_for(&to))
                    .await?;
                let device = match known {
                    Some(device) => device,
                    None => self.open_session(to).await?,
                };
                devices.insert(to, device);
                Ok(Some(device))
            }
            (Conversation::Group(group), OutboxContent::Encrypted(_)) => {
                if !keyed.contains(&group) {
                    self.share_group_key(group).await?;
                    keyed.insert(group);
                }
                Ok(None)
            }
            (Conversation::Group(_), OutboxContent::Plain(_)) => Ok(None),
        }
    }

    pub(crate) async fn open_session(&self, to: UserId) -> Result<DeviceId, SealError> {
        let bundle = match self.request(Request::ClaimBundle { user: to }).await {
            Ok(Response::Bundle(bundle)) => bundle,
            Ok(other) => return Err(ClientError::Unexpected(format!("{other:?}")).into()),
            Err(ClientError::Refused(answer)) => {
                return Err(match answer.code {
                    ErrorCode::NoKeys => {
                        SealError::Wait(format!("{to} has not published keys yet"))
                    }
                    code if code.is_transient() => SealError::Wait(answer.to_string()),
                    _ => SealError::Fail(answer.to_string()),
                });
            }
            Err(error) => return Err(error.into()),
        };
        let installed = self
            .client
            .blocking(move |inner| inner.store.install_outbound(&inner.identity, &to, &bundle))
            .await;
        match installed {
            Ok(device) => Ok(device),
            Err(ClientError::Store(StoreError::Crypto(error))) => Err(SealError::Fail(format!(
                "the relay gave keys for {to} that do not verify: {error}"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Starts receiving: the relay pushes everything after the last ack, then new envelopes.
    pub async fn subscribe(&mut self) -> Result<(), ClientError> {
        match self.request(Request::Subscribe).await? {
            Response::Subscribed {
                one_time_keys,
                heartbeat_ms,
                ..
            } => {
                if heartbeat_ms > 0 {
                    self.connection
                        .requester()
                        .heartbeat(Duration::from_millis(heartbeat_ms))
                        .await
                        .map_err(ConnectionErrorOrRefused)?;
                }
                self.top_up_keys(one_time_keys).await
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
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
                self.events.extend(received.events);
                self.unacked = Some(last);
            }
            if let Some(last) = self.unacked {
                // Stored durably: now the relay may delete them; then send the receipts.
                self.connection
                    .requester()
                    .ack(last)
                    .await
                    .map_err(ConnectionErrorOrRefused)?;
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
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            if let Some(items) = &self.unprocessed {
                // Cancel-safe: the batch stays unprocessed until the gaps are filled, and
                // filling again only asks for what is still missing.
                let changes = crate::groups::changes_in(items);
                self.fill_group_gaps(changes).await?;
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
            let push = match self.retry_at {
                Some(at) => tokio::select! {
                    push = self.connection.next_push() => Some(push),
                    () = tokio::time::sleep_until(at) => None,
                },
                None => Some(self.connection.next_push().await),
            };
            let Some(push) = push else {
                self.flush().await?;
                continue;
            };
            match push {
                Push::Presence(report) => self.events.push_back(Event::Presence {
                    user: report.user,
                    state: report.state,
                }),
                Push::Ephemeral(envelope) => {
                    if let Some(event) = crate::presence::typing_event(&envelope) {
                        self.events.push_back(event);
                    }
                }
                Push::Deliver(items) => self.unprocessed = Some(items),
                Push::CaughtUp { .. } => self.caught_up = true,
                Push::Closed(reason) => {
                    return Err(ClientError::Connection(
                        crate::connection::ConnectionError::Lost(match reason {
                            Some(answer) => answer.to_string(),
                            None => "the relay closed the connection".into(),
                        }),
                    ));
                }
            }
        }
    }

    /// Receives everything waiting at the relay (until caught up, or `timeout`), sends the
    /// outbox, and returns what happened.
    pub async fn sync(&mut self, timeout: Duration) -> Result<Vec<Event>, ClientError> {
        self.subscribe().await?;
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.next_event()).await {
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
        let task = self.client.spawn_blocking(move |inner| {
            inner.store.receive(&inner.identity, &envelopes, &bounces)
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
