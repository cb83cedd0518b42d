//! Counting the push scenario from what the devices stored and when: each delivery was
//! stored during a wake (that a push rang), by the final sweep (missed), or never (lost).

use std::collections::HashMap;

use tidings_client::{Client, Conversation, Direction};
use tidings_protocol::GroupId;

use super::{waker::Wakeup, workload::Planned};

/// Most missed or lost deliveries described in the log.
const MAX_DESCRIBED: usize = 20;

/// The counts.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages their sender's relay accepted (✓).
    pub accepted: usize,
    /// Deliveries owed: one per message and recipient.
    pub deliveries: usize,
    /// Deliveries stored on the recipient's device (by a wake or the sweep).
    pub delivered: usize,
    /// Deliveries stored during a wake.
    pub by_wake: usize,
    /// Deliveries of accepted messages not stored during any wake: stored by the final
    /// sweep, or never.
    pub missed: usize,
    /// Deliveries not stored at all.
    pub lost: usize,
    /// Per delivery stored during a wake: from the arrival of the push that wake answered
    /// until the message was stored, in milliseconds.
    pub push_to_delivered: Vec<f64>,
    /// Some missed deliveries, described.
    pub described: Vec<String>,
}

/// When a message was sent and stored (ms since the epoch).
#[derive(Debug, Clone, Copy)]
struct Times {
    sent_ms: u64,
    stored_ms: u64,
}

/// Per device, its incoming messages' texts and their times.
fn stored_texts(
    clients: &[Client],
    index: usize,
    group: Option<GroupId>,
) -> anyhow::Result<HashMap<String, Times>> {
    let client = &clients[index];
    let mut conversations: Vec<Conversation> = clients
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .map(|(_, peer)| Conversation::Direct(peer.user_id()))
        .collect();
    conversations.extend(group.map(Conversation::Group));
    let mut stored = HashMap::new();
    for conversation in conversations {
        for record in client.store().history(&conversation)? {
            if record.direction == Direction::Incoming {
                stored.entry(record.text).or_insert(Times {
                    sent_ms: record.sent_at_ms,
                    stored_ms: record.stored_at_ms,
                });
            }
        }
    }
    Ok(stored)
}

/// Texts each sender's relay accepted.
fn accepted_texts(
    clients: &[Client],
    group: Option<GroupId>,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut accepted = std::collections::HashSet::new();
    for (index, client) in clients.iter().enumerate() {
        let mut conversations: Vec<Conversation> = clients
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, peer)| Conversation::Direct(peer.user_id()))
            .collect();
        conversations.extend(group.map(Conversation::Group));
        for conversation in conversations {
            for record in client.store().history(&conversation)? {
                if record.direction == Direction::Outgoing && record.status.is_sent() {
                    accepted.insert(record.text);
                }
            }
        }
    }
    Ok(accepted)
}

/// How many of `plan`'s deliveries are stored now (to know when the wakes are done).
pub fn delivered_now(
    clients: &[Client],
    plan: &[Planned],
    group: Option<GroupId>,
) -> anyhow::Result<(usize, usize)> {
    let mut owed = 0;
    let mut delivered = 0;
    let stored: Vec<HashMap<String, Times>> = (0..clients.len())
        .map(|index| stored_texts(clients, index, group))
        .collect::<anyhow::Result<_>>()?;
    for message in plan {
        for recipient in &message.recipients {
            owed += 1;
            if stored[*recipient].contains_key(&message.text) {
                delivered += 1;
            }
        }
    }
    Ok((delivered, owed))
}

/// Counts the run: `wakeups` are every wake of every device.
pub fn count(
    clients: &[Client],
    plan: &[Planned],
    group: Option<GroupId>,
    wakeups: &[Wakeup],
) -> anyhow::Result<Tally> {
    let accepted = accepted_texts(clients, group)?;
    let stored: Vec<HashMap<String, Times>> = (0..clients.len())
        .map(|index| stored_texts(clients, index, group))
        .collect::<anyhow::Result<_>>()?;
    let mut tally = Tally::default();
    for message in plan {
        let was_accepted = accepted.contains(&message.text);
        if was_accepted {
            tally.accepted += 1;
        }
        for recipient in &message.recipients {
            tally.deliveries += 1;
            let times = stored[*recipient].get(&message.text).copied();
            if times.is_some() {
                tally.delivered += 1;
            } else {
                tally.lost += 1;
            }
            let wake = times.and_then(|times| {
                wakeups
                    .iter()
                    .find(|wakeup| wakeup.device == *recipient && wakeup.covers(times.stored_ms))
                    .map(|wakeup| (times.stored_ms, wakeup))
            });
            match wake {
                Some((at, wakeup)) => {
                    tally.by_wake += 1;
                    tally
                        .push_to_delivered
                        .push(at.saturating_sub(wakeup.push_ms) as f64);
                }
                None if was_accepted => {
                    tally.missed += 1;
                    if tally.described.len() < MAX_DESCRIBED {
                        let how = match times {
                            Some(times) => describe(times, *recipient, wakeups),
                            None => "never stored".to_string(),
                        };
                        tally
                            .described
                            .push(format!("\"{}\" for u{recipient}: {how}", message.text));
                    }
                }
                None => {}
            }
        }
    }
    for described in &tally.described {
        tracing::error!("missed: {described}");
    }
    Ok(tally)
}

/// How a delivery the final sweep stored relates to its device's wakes: whether it was sent
/// while the device was awake (so the relay handed it to that session, which closed without
/// taking it, and counted no push for it) or while the device was offline.
fn describe(times: Times, device: usize, wakeups: &[Wakeup]) -> String {
    let awake = wakeups
        .iter()
        .find(|wakeup| wakeup.device == device && wakeup.covers(times.sent_ms));
    match awake {
        Some(wakeup) => format!(
            "stored by the final sweep only; sent {} ms into a wake of {} ms",
            times.sent_ms.saturating_sub(wakeup.started_ms),
            wakeup.ended_ms.saturating_sub(wakeup.started_ms)
        ),
        None => {
            let after = wakeups
                .iter()
                .filter(|wakeup| wakeup.device == device && wakeup.started_ms > times.sent_ms)
                .count();
            format!(
                "stored by the final sweep only; sent while the device was offline ({after} wakes after)"
            )
        }
    }
}
