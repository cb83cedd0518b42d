//! The chaos schedule: relay kills and restarts, cut and healed relay links, users going
//! offline and back, drawn from a seed and played against the cluster.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use tokio::{sync::watch, time::Instant};

use crate::cluster::Cluster;

/// How long a killed relay stays down, at most.
const MAX_DOWN: Duration = Duration::from_millis(2_500);

/// How long a partition lasts, at most.
const MAX_PARTITION: Duration = Duration::from_secs(5);

/// How long a user stays offline, at most.
const MAX_AWAY: Duration = Duration::from_secs(5);

/// Mean time between a user going offline and the next one doing so.
const AWAY_EVERY: Duration = Duration::from_millis(700);

/// One thing done to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a relay.
    Kill(usize),
    /// Start a killed relay again on its address and data.
    Restart(usize),
    /// Cut the link between two relays (both refuse each other).
    Cut(usize, usize),
    /// Restore it.
    Heal(usize, usize),
    /// A user's device goes offline.
    Away(usize),
    /// It comes back.
    Back(usize),
}

/// What to break, and how often.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Relays in the cluster.
    pub relays: usize,
    /// Users.
    pub users: usize,
    /// Mean time between kills; none if zero.
    pub kill_every: Duration,
    /// Whether relay links are cut too.
    pub partition: bool,
    /// Faults start during `[0, horizon)`; every one is undone by `horizon + MAX_*`.
    pub horizon: Duration,
    /// Seed of the draw.
    pub seed: u64,
}

/// Mean time between partitions when there are no kills to pace them.
const PARTITION_EVERY_DEFAULT: Duration = Duration::from_secs(3);

/// Draws the faults, in time order. Every kill is followed by its restart and every cut or
/// away by its undoing; a relay is never killed again while down, a link never cut twice.
pub fn schedule(plan: &Plan) -> Vec<(Duration, Fault)> {
    let mut rng = StdRng::seed_from_u64(plan.seed ^ 0xC4A0_5EED);
    let mut events = Vec::new();
    let jitter = |rng: &mut StdRng, mean: Duration| mean.mul_f64(rng.random_range(0.5..1.5));
    if !plan.kill_every.is_zero() {
        let mut down_until = vec![Duration::ZERO; plan.relays];
        let mut at = jitter(&mut rng, plan.kill_every);
        while at < plan.horizon {
            let up: Vec<usize> = (0..plan.relays).filter(|r| down_until[*r] <= at).collect();
            if !up.is_empty() {
                let relay = up[rng.random_range(0..up.len())];
                let back = at + MAX_DOWN.mul_f64(rng.random_range(0.1..1.0));
                down_until[relay] = back;
                events.push((at, Fault::Kill(relay)));
                events.push((back, Fault::Restart(relay)));
            }
            at += jitter(&mut rng, plan.kill_every);
        }
    }
    if plan.partition && plan.relays >= 2 {
        let every = if plan.kill_every.is_zero() {
            PARTITION_EVERY_DEFAULT
        } else {
            plan.kill_every
        };
        let mut cut_until = std::collections::HashMap::new();
        let mut at = jitter(&mut rng, every);
        while at < plan.horizon {
            let a = rng.random_range(0..plan.relays);
            let b = (a + rng.random_range(1..plan.relays)) % plan.relays;
            let link = (a.min(b), a.max(b));
            if cut_until.get(&link).is_none_or(|until| *until <= at) {
                let healed = at + MAX_PARTITION.mul_f64(rng.random_range(0.2..1.0));
                cut_until.insert(link, healed);
                events.push((at, Fault::Cut(link.0, link.1)));
                events.push((healed, Fault::Heal(link.0, link.1)));
            }
            at += jitter(&mut rng, every);
        }
    }
    let mut away_until = vec![Duration::ZERO; plan.users];
    let mut at = jitter(&mut rng, AWAY_EVERY);
    while at < plan.horizon && plan.users > 0 {
        let user = rng.random_range(0..plan.users);
        if away_until[user] <= at {
            let back = at + MAX_AWAY.mul_f64(rng.random_range(0.1..1.0));
            away_until[user] = back;
            events.push((at, Fault::Away(user)));
            events.push((back, Fault::Back(user)));
        }
        at += jitter(&mut rng, AWAY_EVERY);
    }
    // Stable: a restart and a kill drawn for the same instant keep their order.
    events.sort_by_key(|(at, _)| *at);
    events
}

/// How much chaos was actually played.
#[derive(Debug, Clone, Copy, Default)]
pub struct Played {
    /// Relays killed with SIGKILL (each restarted).
    pub kills: usize,
    /// Relay links cut (each healed).
    pub partitions: usize,
    /// Times a user went offline (each came back).
    pub offline_episodes: usize,
}

/// Plays `events` from `start`, then makes sure every relay runs, every link is healed and
/// every user is online.
pub async fn play(
    cluster: &mut Cluster,
    online: &[watch::Sender<bool>],
    events: &[(Duration, Fault)],
    start: Instant,
) -> anyhow::Result<Played> {
    let mut played = Played::default();
    for (at, fault) in events {
        tokio::time::sleep_until(start + *at).await;
        tracing::info!(?fault, at_s = at.as_secs_f64(), "chaos");
        match *fault {
            Fault::Kill(relay) => {
                cluster.relays[relay].kill9().await?;
                played.kills += 1;
            }
            Fault::Restart(relay) => cluster.relays[relay].restart().await?,
            Fault::Cut(a, b) => {
                link(cluster, a, b, true).await?;
                played.partitions += 1;
            }
            Fault::Heal(a, b) => link(cluster, a, b, false).await?,
            Fault::Away(user) => {
                online[user].send_replace(false);
                played.offline_episodes += 1;
            }
            Fault::Back(user) => {
                online[user].send_replace(true);
            }
        }
    }
    for flag in online {
        flag.send_replace(true);
    }
    Ok(played)
}

/// Cuts or heals the link between relays `a` and `b` on both sides. A side that is down
/// right now gets it on restart.
async fn link(cluster: &mut Cluster, a: usize, b: usize, cut: bool) -> anyhow::Result<()> {
    let peers = [cluster.relays[a].peer_id()?, cluster.relays[b].peer_id()?];
    for (side, other) in [(a, peers[1]), (b, peers[0])] {
        if let Err(error) = cluster.relays[side].set_blocked(other, cut).await {
            tracing::debug!(%error, side, "relay is down; the link state applies on restart");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_is_undone_and_never_doubled() {
        let plan = Plan {
            relays: 3,
            users: 5,
            kill_every: Duration::from_millis(400),
            partition: true,
            horizon: Duration::from_secs(20),
            seed: 7,
        };
        let events = schedule(&plan);
        assert!(events.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        let mut down = [false; 3];
        let mut away = [false; 5];
        let mut cut = std::collections::HashSet::new();
        for (_, fault) in &events {
            match *fault {
                Fault::Kill(r) => assert!(!std::mem::replace(&mut down[r], true)),
                Fault::Restart(r) => assert!(std::mem::replace(&mut down[r], false)),
                Fault::Cut(a, b) => assert!(cut.insert((a, b))),
                Fault::Heal(a, b) => assert!(cut.remove(&(a, b))),
                Fault::Away(u) => assert!(!std::mem::replace(&mut away[u], true)),
                Fault::Back(u) => assert!(std::mem::replace(&mut away[u], false)),
            }
        }
        assert!(down.iter().chain(&away).all(|flag| !flag) && cut.is_empty());
        assert!(events.iter().any(|(_, f)| matches!(f, Fault::Kill(_))));
        assert!(events.iter().any(|(_, f)| matches!(f, Fault::Cut(..))));
        assert_eq!(
            schedule(&plan),
            events,
            "the same seed draws the same faults"
        );
    }
}
