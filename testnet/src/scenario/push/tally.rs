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

/// Per device, its incoming messages' texts and when it stored them (ms since the epoch).
fn stored_texts(
    clients: &[Client],
    index: usize,
    group: Option<GroupId>,
) -> anyhow::Result<HashMap<String, u64>> {
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
                stored.entry(record.text).or_insert(record.stored_at_ms);
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
    let stored: Vec<HashMap<String, u64>> = (0..clients.len())
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
    let stored: Vec<HashMap<String, u64>> = (0..clients.len())
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
            let stored_ms = stored[*recipient].get(&message.text).copied();
            if stored_ms.is_some() {
                tally.delivered += 1;
            } else {
                tally.lost += 1;
            }
            let wake = stored_ms.and_then(|at| {
                wakeups
                    .iter()
                    .find(|wakeup| wakeup.device == *recipient && wakeup.covers(at))
                    .map(|wakeup| (at, wakeup))
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
                        let how = if stored_ms.is_some() {
                            "stored by the final sweep only"
                        } else {
                            "never stored"
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
