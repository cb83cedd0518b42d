//! Sending the outbox in order: finding each recipient's devices (and our own other devices,
//! which get a copy), sealing once per device, sending in batches, and moving each message's
//! ticks by logical message.

use std::collections::{HashMap, HashSet, VecDeque};

use tidings_protocol::{
    Address, BoundedVec, EnvelopeId, ErrorCode, GroupId, Kind, Recipient, UserId,
    client::SendOutcome,
    limits::{MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES},
};

use crate::{
    calls::Send,
    client::Client,
    connection::Connection,
    device_lists::{devices_of, refresh_list},
    error::{ClientError, SealError},
    events::Event,
    group_keys::share_group_key,
    olm_sessions::{Unreachable, reach},
    store::{Conversation, MessageRecord, OutboxEntry, outbox::Finished, tables::OutboxContent},
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

/// Who an entry for a user is sealed for, found once per flush and user.
#[derive(Debug, Clone)]
enum Targets {
    /// These devices (the peer's, then our own other devices).
    Devices(Vec<Address>),
    /// Not now (no list, no keys yet, the relay asked to wait).
    Wait(String),
    /// Never.
    Fail(String),
}

impl Flusher<'_> {
    pub(crate) async fn flush_once(&mut self) -> Result<FlushReport, ClientError> {
        let lock = self.client.inner.flushing.clone();
        let _flushing = lock.lock().await;
        let mut report = FlushReport::default();
        let mut waiting: HashSet<Conversation> = HashSet::new();
        let mut keyed: HashSet<GroupId> = HashSet::new();
        let mut found: HashMap<UserId, Targets> = HashMap::new();
        loop {
            let pending = self
                .client
                .blocking(|inner| inner.store.pending(4 * MAX_BATCH_ENVELOPES))
                .await?;
            // Choose a batch, finding each recipient's devices first (network, for a new
            // peer), then seal what is not sealed yet in one local commit.
            let mut chosen: Vec<(u64, OutboxEntry)> = Vec::new();
            let mut to_seal: Vec<(u64, Vec<Address>)> = Vec::new();
            let mut nobody: Vec<(u64, EnvelopeId, Finished)> = Vec::new();
            let mut envelopes = 0;
            for (seq, entry) in pending {
                if envelopes >= MAX_BATCH_ENVELOPES {
                    break;
                }
                if waiting.contains(&entry.to) {
                    continue;
                }
                if entry.sealed.is_empty() {
                    match self.prepare(&entry, &mut keyed, &mut found).await {
                        // Only our own other devices, and we have none: nothing to send.
                        Ok(devices) if devices.is_empty() && entry.to.is_direct() => {
                            nobody.push((seq, entry.id, Finished::Sent));
                            continue;
                        }
                        Ok(devices) => {
                            envelopes += devices.len().max(1);
                            to_seal.push((seq, devices));
                        }
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
                } else {
                    envelopes += entry.sealed.len();
                }
                chosen.push((seq, entry));
            }
            self.finish(nobody, &mut report).await?;
            let mut sealed_now = if to_seal.is_empty() {
                Vec::new()
            } else {
                self.client
                    .blocking(move |inner| inner.store.seal_many(&inner.identity, &to_seal))
                    .await?
            }
            .into_iter();
            let mut batch: Vec<(u64, OutboxEntry)> = Vec::new();
            let mut bytes = 0;
            let mut count = 0;
            for (seq, mut entry) in chosen {
                if entry.sealed.is_empty() {
                    entry.sealed = sealed_now
                        .next()
                        .ok_or(ClientError::Internal("an outbox entry was not sealed"))?;
                }
                let size: usize = entry.sealed.iter().map(|copy| copy.envelope.len()).sum();
                // What does not fit stays sealed in the outbox for the next request.
                if !batch.is_empty()
                    && (bytes + size > SEND_MAX_BYTES
                        || count + entry.sealed.len() > MAX_BATCH_ENVELOPES)
                {
                    break;
                }
                bytes += size;
                count += entry.sealed.len();
                batch.push((seq, entry));
            }
            if batch.is_empty() {
                return Ok(report);
            }
            let envelopes = batch
                .iter()
                .flat_map(|(_, entry)| entry.sealed.iter().map(|copy| copy.envelope.clone()))
                .collect();
            let envelopes = BoundedVec::new(envelopes).map_err(|source| ClientError::TooMany {
                what: "envelopes in a send",
                source,
            })?;
            let mut outcomes = self.connection.call(Send { envelopes }).await?.into_iter();
            let mut stop = false;
            let mut finished = Vec::with_capacity(batch.len());
            let me = self.client.address();
            for (seq, entry) in batch {
                let answers: Vec<SendOutcome> =
                    outcomes.by_ref().take(entry.sealed.len()).collect();
                match settle(&entry, &answers, me) {
                    Settled::Done(done) => finished.push((seq, entry.id, done)),
                    Settled::Retry(reason) => {
                        tracing::info!(%reason, "relay asked to retry later");
                        report.waiting.push(reason);
                        waiting.insert(entry.to);
                        stop = true;
                    }
                }
                for (copy, answer) in entry.sealed.iter().zip(&answers) {
                    let SendOutcome::Rejected(answer) = answer else {
                        continue;
                    };
                    if !answer.code.is_transient() {
                        report.refused.push((entry.id, answer.to_string()));
                    }
                    if let (ErrorCode::UnknownRecipient, Recipient::Direct(device)) =
                        (answer.code, copy.to)
                    {
                        // A device no longer on its list: use a fresh list next time.
                        found.remove(&device.user);
                        refresh_list(self.client, self.connection, device.user, self.events)
                            .await?;
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

    /// What sealing an entry needs first: for a user, the devices to seal it for (every
    /// device of theirs we can reach, and for a message our own other devices too, opening
    /// Olm sessions from claimed bundles; found once per flush); for a group message, that
    /// every member device holds the current session key (once per flush per group).
    async fn prepare(
        &mut self,
        entry: &OutboxEntry,
        keyed: &mut HashSet<GroupId>,
        found: &mut HashMap<UserId, Targets>,
    ) -> Result<Vec<Address>, SealError> {
        match (entry.to, &entry.content) {
            (Conversation::Direct(to), _) => {
                let me = self.client.user_id();
                let mut devices = Vec::new();
                if to != me {
                    match self.targets(to, found).await? {
                        Targets::Devices(theirs) if theirs.is_empty() => {
                            return Err(SealError::Wait(format!(
                                "{to} has no device to send to yet"
                            )));
                        }
                        Targets::Devices(theirs) => devices.extend(theirs),
                        Targets::Wait(reason) => return Err(SealError::Wait(reason)),
                        Targets::Fail(reason) => return Err(SealError::Fail(reason)),
                    }
                }
                // Our other devices get a copy of what we send (and every sync to us).
                if to == me || entry.kind == Kind::Message {
                    if let Targets::Devices(ours) = self.targets(me, found).await? {
                        let this = self.client.address();
                        devices.extend(ours.into_iter().filter(|device| *device != this));
                    }
                }
                Ok(devices)
            }
            (Conversation::Group(group), OutboxContent::Encrypted(_)) => {
                if !keyed.contains(&group) {
                    share_group_key(self.client, self.connection, group, self.events).await?;
                    keyed.insert(group);
                }
                Ok(Vec::new())
            }
            (Conversation::Group(_), OutboxContent::Plain(_)) => Ok(Vec::new()),
        }
    }

    /// The devices of `user` this device can encrypt to now (fetching their list and
    /// claiming bundles as needed), remembered for the rest of the flush.
    async fn targets(
        &mut self,
        user: UserId,
        found: &mut HashMap<UserId, Targets>,
    ) -> Result<Targets, SealError> {
        if let Some(targets) = found.get(&user) {
            return Ok(targets.clone());
        }
        let devices = devices_of(self.client, self.connection, user, self.events).await?;
        let targets = if devices.is_empty() {
            Targets::Wait(format!("{user} has not published a device list yet"))
        } else {
            let reach = reach(self.client, self.connection, devices).await?;
            if !reach.ready.is_empty() {
                for (device, why) in &reach.unreachable {
                    tracing::info!(%device, ?why, "a device gets this later or not at all");
                }
                Targets::Devices(reach.ready)
            } else if let Some((_, Unreachable::Later(reason))) = reach
                .unreachable
                .iter()
                .find(|(_, why)| matches!(why, Unreachable::Later(_)))
            {
                Targets::Wait(reason.clone())
            } else {
                let reason = reach
                    .unreachable
                    .first()
                    .map(|(_, why)| match why {
                        Unreachable::Later(reason) | Unreachable::Never(reason) => reason.clone(),
                    })
                    .unwrap_or_else(|| format!("no device of {user} can be reached"));
                Targets::Fail(reason)
            }
        };
        found.insert(user, targets.clone());
        Ok(targets)
    }
}

/// How one entry ended, from the relay's answers to its envelopes.
enum Settled {
    /// Finished: sent, or refused for good.
    Done(Finished),
    /// Some envelope must be sent again later (the same bytes; the relay dedupes the rest).
    Retry(String),
}

/// ✓ when the relay holds every envelope of the entry (the ones it refused for good aside,
/// as long as one for the recipient was taken); failed when it took none for the recipient.
fn settle(entry: &OutboxEntry, answers: &[SendOutcome], me: Address) -> Settled {
    if let Some(SendOutcome::Rejected(answer)) = answers
        .iter()
        .find(|answer| matches!(answer, SendOutcome::Rejected(a) if a.code.is_transient()))
    {
        return Settled::Retry(answer.to_string());
    }
    let to_sync = entry.to == Conversation::Direct(me.user);
    let mut refusal = None;
    let mut taken = false;
    for (copy, answer) in entry.sealed.iter().zip(answers) {
        let own = matches!(copy.to, Recipient::Direct(device) if device.user == me.user);
        if own && !to_sync {
            continue;
        }
        match answer {
            SendOutcome::Accepted | SendOutcome::Duplicate => taken = true,
            SendOutcome::Rejected(answer) => refusal = Some(answer.to_string()),
        }
    }
    match (taken, refusal) {
        (false, Some(reason)) => Settled::Done(Finished::Failed(reason)),
        _ => Settled::Done(Finished::Sent),
    }
}
