//! Counting the multidevice workload per intended device: what each device's store holds,
//! matched against the plan of who sent what to whom.

use std::collections::{HashMap, HashSet};

use tidings_client::{Conversation, MessageStatus};

use super::world::{Dev, World};

/// Where a planned message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A 1:1 message to this user.
    User(usize),
    /// A message to the group.
    Group,
}

/// One message of the workload.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// The device that sends it.
    pub sender: Dev,
    /// Where it goes.
    pub target: Target,
    /// Sent after the removal of a device (which must not get it).
    pub after_removal: bool,
}

/// The workload so far, by text (texts are unique: sender device, target and counter).
pub type Plan = HashMap<String, Planned>;

/// What the devices' stores hold: the scenarios' tally, counted per intended device
/// (`delivered`, `expected`), with `leaks` for the removed device.
pub use crate::scenario::tally::Tally;

/// The devices `planned` must reach: every device of the recipient users and the sender's
/// other devices, without `removed` for what was sent after its removal.
fn intended(world: &World, planned: &Planned, removed: Option<Dev>) -> Vec<Dev> {
    let users: Vec<usize> = match planned.target {
        Target::User(user) => vec![user, planned.sender.0],
        Target::Group => world.members.clone(),
    };
    users
        .into_iter()
        .flat_map(|user| (0..world.devices[user].len()).map(move |device| (user, device)))
        .filter(|dev| *dev != planned.sender)
        .filter(|dev| !(planned.after_removal && Some(*dev) == removed))
        .collect()
}

fn label(dev: Dev) -> String {
    format!("u{}.{}", dev.0, dev.1)
}

/// Reads every device's 1:1 histories and the group's, and counts against `plan`.
pub fn count(world: &World, plan: &Plan, removed: Option<Dev>) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut accepted: Vec<&str> = Vec::new();
    let mut reached: HashMap<&str, HashSet<Dev>> = HashMap::new();
    for dev in world.all() {
        let client = world.client(dev);
        let mut conversations: Vec<Conversation> = world
            .devices
            .iter()
            .enumerate()
            .filter(|(user, _)| *user != dev.0)
            .map(|(_, devices)| Conversation::Direct(devices[0].user_id()))
            .collect();
        if world.members.contains(&dev.0) {
            conversations.push(Conversation::Group(world.group));
        }
        for conversation in conversations {
            // Per sending device and target: the last counter stored here.
            let mut last: HashMap<&str, u64> = HashMap::new();
            for record in client.store().history(&conversation)? {
                let Some((text, planned)) = plan.get_key_value(record.text.as_str()) else {
                    continue;
                };
                if planned.sender == dev {
                    tally.written += 1;
                    match &record.status {
                        status if status.is_sent() => accepted.push(text),
                        MessageStatus::Pending => tally.pending += 1,
                        failed => {
                            if tally.missing.len() < 20 {
                                tally.missing.push(format!(
                                    "{} \"{text}\" never accepted: {failed:?}",
                                    label(dev)
                                ));
                            }
                        }
                    }
                    continue;
                }
                if planned.after_removal && Some(dev) == removed {
                    tally.leaks += 1;
                    continue;
                }
                if !reached.entry(text).or_default().insert(dev) {
                    tally.duplicates += 1;
                    continue;
                }
                if let Some((stream, counter)) = text.rsplit_once('#') {
                    let counter: u64 = counter.parse().unwrap_or(0);
                    let previous = last.entry(stream).or_insert(0);
                    if counter < *previous {
                        tally.out_of_order += 1;
                    }
                    *previous = (*previous).max(counter);
                }
                tally
                    .latencies
                    .push(record.stored_at_ms.saturating_sub(record.sent_at_ms) as f64);
            }
        }
    }
    tally.accepted = accepted.len();
    for text in accepted {
        let Some(planned) = plan.get(text) else {
            continue;
        };
        let got = reached.get(text);
        for dev in intended(world, planned, removed) {
            tally.expected += 1;
            if got.is_some_and(|got| got.contains(&dev)) {
                tally.delivered += 1;
            } else if tally.missing.len() < 20 {
                tally.missing.push(format!("\"{text}\" -> {}", label(dev)));
            }
        }
    }
    Ok(tally)
}

/// Counts every 250 ms until the `sent` messages of `plan` settled or `deadline` passes;
/// logs what is still missing.
pub async fn settle(
    world: &World,
    plan: &Plan,
    removed: Option<Dev>,
    deadline: std::time::Instant,
) -> anyhow::Result<Tally> {
    let mut tally = count(world, plan, removed)?;
    while !tally.settled(plan.len()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        tally = count(world, plan, removed)?;
    }
    for missing in &tally.missing {
        tracing::error!("lost: {missing}");
    }
    Ok(tally)
}
