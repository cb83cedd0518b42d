//! Counting deliveries from what the users' clients stored: accepted, lost, duplicated and
//! reordered messages, in 1:1 conversations and groups alike.

use std::collections::{HashMap, HashSet};

use tidings_client::{Client, Conversation, Direction, MessageStatus};
use tidings_protocol::{EnvelopeId, GroupId};

use super::users::name;
use crate::report::{Percentiles, Report};

/// A group of the workload and its members (indexes into the clients).
#[derive(Debug, Clone)]
pub struct GroupMembers {
    /// The group.
    pub id: GroupId,
    /// Its members, the creator included.
    pub members: Vec<usize>,
}

/// What the users' stores hold. Only workload texts count: `<label>#<counter>`, where the
/// counter grows per sender and conversation.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages a relay accepted (✓ at the sender).
    pub accepted: usize,
    /// Messages written by their senders, whatever their state.
    pub written: usize,
    /// Messages still waiting in their sender's outbox.
    pub pending: usize,
    /// Deliveries those messages owe: one per intended recipient.
    pub expected: usize,
    /// Deliveries found in the recipients' histories.
    pub delivered: usize,
    /// Deliveries stored more than once.
    pub duplicates: usize,
    /// Deliveries stored before an earlier message of the same sender and conversation.
    pub out_of_order: usize,
    /// Messages sent after a device's removal that the removed device holds (scenario
    /// multidevice; 0 elsewhere).
    pub leaks: usize,
    /// From sending to being stored, per delivery, in milliseconds.
    pub latencies: Vec<f64>,
    /// Some missing deliveries, described for the log.
    pub missing: Vec<String>,
}

impl Tally {
    /// Deliveries still owed.
    pub fn lost(&self) -> usize {
        self.expected.saturating_sub(self.delivered)
    }

    /// Whether all `sent` messages were written, left their senders and reached everyone
    /// they were meant for.
    pub fn settled(&self, sent: usize) -> bool {
        self.written >= sent && self.pending == 0 && self.lost() == 0
    }
}

/// Counts every 250 ms until all `sent` messages were written, left their senders and
/// arrived, or `deadline` passes; logs what is still missing.
pub async fn settle(
    clients: &[Client],
    groups: &[GroupMembers],
    sent: usize,
    deadline: std::time::Instant,
) -> anyhow::Result<Tally> {
    let mut tally = count(clients, groups)?;
    while !tally.settled(sent) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        tally = count(clients, groups)?;
    }
    for missing in &tally.missing {
        tracing::error!("lost: {missing}");
    }
    Ok(tally)
}

/// What a run was, beside what its tally counted.
pub struct Run {
    /// Scenario name.
    pub scenario: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Users.
    pub users: usize,
    /// Messages handed to senders.
    pub sent: usize,
    /// When the run started.
    pub started: std::time::Instant,
    /// Users that went offline for part of the run.
    pub offline_users: usize,
    /// Seed of the workload.
    pub seed: u64,
}

impl Tally {
    /// The report of `run`, with these counts.
    pub fn report(self, run: Run) -> Report {
        Report {
            scenario: run.scenario,
            relays: run.relays,
            users: run.users,
            sent: run.sent,
            accepted: self.accepted,
            delivered: self.delivered,
            lost: self.lost(),
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            latency_ms: Percentiles::of(self.latencies),
            wall_s: run.started.elapsed().as_secs_f64(),
            offline_users: run.offline_users,
            seed: run.seed,
        }
    }
}

/// One accepted message: who must get it, and how to name it.
struct Owed {
    recipients: Vec<usize>,
    what: String,
}

/// Reads every client's 1:1 histories with every other client and the histories of
/// `groups`, and counts.
pub fn count(clients: &[Client], groups: &[GroupMembers]) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut owed: HashMap<EnvelopeId, Owed> = HashMap::new();
    let mut received: HashMap<EnvelopeId, HashSet<usize>> = HashMap::new();
    for (index, client) in clients.iter().enumerate() {
        let mut conversations: Vec<(Conversation, Vec<usize>)> = clients
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(other, peer)| (Conversation::Direct(peer.user_id()), vec![other]))
            .collect();
        for group in groups.iter().filter(|group| group.members.contains(&index)) {
            let others = group
                .members
                .iter()
                .copied()
                .filter(|member| *member != index)
                .collect();
            conversations.push((Conversation::Group(group.id), others));
        }
        for (conversation, recipients) in conversations {
            let mut last_counter: HashMap<String, u64> = HashMap::new();
            for record in client.store().history(&conversation)? {
                let Some((label, counter)) = record.text.rsplit_once('#') else {
                    continue;
                };
                if record.direction == Direction::Outgoing {
                    tally.written += 1;
                }
                match record.direction {
                    Direction::Outgoing if record.status.is_sent() => {
                        owed.insert(
                            record.id,
                            Owed {
                                recipients: recipients.clone(),
                                what: format!(
                                    "{} \"{}\" ({:?})",
                                    name(index),
                                    record.text,
                                    record.status
                                ),
                            },
                        );
                    }
                    Direction::Outgoing => match &record.status {
                        MessageStatus::Pending => tally.pending += 1,
                        failed => {
                            if tally.missing.len() < 20 {
                                tally.missing.push(format!(
                                    "{} \"{}\" never accepted: {failed:?}",
                                    name(index),
                                    record.text
                                ));
                            }
                        }
                    },
                    Direction::Incoming => {
                        if !received.entry(record.id).or_default().insert(index) {
                            tally.duplicates += 1;
                            continue;
                        }
                        let counter: u64 = counter.parse().unwrap_or(0);
                        let last = last_counter.entry(label.to_string()).or_insert(0);
                        if counter < *last {
                            tally.out_of_order += 1;
                        }
                        *last = (*last).max(counter);
                        tally
                            .latencies
                            .push(record.stored_at_ms.saturating_sub(record.sent_at_ms) as f64);
                    }
                }
            }
        }
    }
    tally.accepted = owed.len();
    for (id, message) in &owed {
        let got = received.get(id);
        for recipient in &message.recipients {
            tally.expected += 1;
            if got.is_some_and(|got| got.contains(recipient)) {
                tally.delivered += 1;
            } else if tally.missing.len() < 20 {
                tally
                    .missing
                    .push(format!("{} -> {}", message.what, name(*recipient)));
            }
        }
    }
    Ok(tally)
}
