//! Sending the outbox in order: finding each recipient's device (claiming a bundle for a
//! new peer), sealing, sending in batches, and moving each message's ticks.

use std::collections::{HashMap, HashSet, VecDeque};

use tidings_protocol::{
    BoundedVec, DeviceId, EnvelopeId, ErrorCode, GroupId, RawEnvelope, UserId,
    client::SendOutcome,
    limits::{MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES},
};

use crate::{
    calls::{ClaimBundle, Send},
    client::Client,
    connection::{Connection, ConnectionError},
    error::{ClientError, SealError},
    events::Event,
    group_keys::share_group_key,
    store::{
        Conversation, MessageRecord, OutboxEntry, StoreError, outbox::Finished,
        tables::OutboxContent,
    },
};

/// Most envelope bytes in one `Send` request.
const SEND_MAX_BYTES: usize = MAX_FRAME_BYTES / 2;

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

/// One flush of the outbox over a session's connection; status changes go to `events`.
pub(crate) struct Flusher<'a> {
    pub client: &'a Client,
    pub connection: &'a Connection,
    pub events: &'a mut VecDeque<Event>,
}

impl Flusher<'_> {
    pub(crate) async fn flush_once(&mut self) -> Result<FlushReport, ClientError> {
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
                        .ok_or(ClientError::Internal("an outbox entry was not sealed"))?,
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
            let envelopes = BoundedVec::new(envelopes).map_err(|source| ClientError::TooMany {
                what: "envelopes in a send",
                source,
            })?;
            let outcomes = self.connection.call(Send { envelopes }).await?;
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
                    share_group_key(self.client, self.connection, group).await?;
                    keyed.insert(group);
                }
                Ok(None)
            }
            (Conversation::Group(_), OutboxContent::Plain(_)) => Ok(None),
        }
    }

    async fn open_session(&self, to: UserId) -> Result<DeviceId, SealError> {
        let bundle = match self.connection.call(ClaimBundle { user: to }).await {
            Ok(bundle) => bundle,
            Err(ConnectionError::Refused(answer)) => {
                return Err(match answer.code {
                    ErrorCode::NoKeys => {
                        SealError::Wait(format!("{to} has not published keys yet"))
                    }
                    code if code.is_transient() => SealError::Wait(answer.to_string()),
                    _ => SealError::Fail(answer.to_string()),
                });
            }
            Err(error) => return Err(ClientError::from(error).into()),
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
}
