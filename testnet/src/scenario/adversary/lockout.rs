//! Federation lockout (issue 12, item 3): a stranger holds 20 connections x 60 stalled
//! federation streams at Bob's relay. Relays that already hold a link keep using it, so the
//! link from relay 1 is cut (as connections do break; the stranger takes the slot it held)
//! and healed before an honest user there writes to Bob: judged by whether the message
//! reaches Bob's client in time. A control round without the flood first shows the same path
//! delivers.

use std::time::{Duration, Instant};

use anyhow::bail;
use tidings_client::Client;

use super::{
    Findings, Verdict,
    dialer::Flood,
    findings,
    world::{World, eventually, readable},
};
use crate::scenario::users;

const LOCKOUT: &str = "federation_lockout";

/// Connections the stranger opens.
const FLOOD_CONNECTIONS: usize = 20;

/// Idle streams on each.
const FLOOD_STREAMS: usize = 60;

/// How long an honest cross-relay message may take to arrive (the bound it is judged by).
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(8);

/// Most streams the stranger adds once the link is cut.
const TOP_UP: usize = 16;

/// How long the link stays cut.
const CUT: Duration = Duration::from_millis(300);

/// Runs the attack against Bob's relay.
pub async fn run(world: &World) -> Findings {
    findings(&[LOCKOUT], attempt(world).await)
}

async fn attempt(world: &World) -> anyhow::Result<Findings> {
    let victim = world.home_of(1);
    let source = (0..world.relays.len())
        .find(|relay| *relay != victim)
        .unwrap_or(0);
    let sender = world.probe_user("lockout-probe", source).await?;
    world.introduce(&sender, "bob", world.bob())?;

    set_link(world, source, victim, false).await?;
    tokio::time::sleep(CUT).await;
    set_link(world, source, victim, true).await?;
    let control = probe(world, &sender, "lockout control").await?;
    let Some(control) = control else {
        bail!(
            "without a flood, a message from relay {} to Bob did not arrive within {} s",
            source + 1,
            DELIVERY_DEADLINE.as_secs()
        );
    };

    // The stranger fills every slot; then the link breaks (as connections do), the slot it
    // held goes to the stranger too, and the link heals.
    let mut flood =
        Flood::start(&world.relays[victim].addr, FLOOD_CONNECTIONS, FLOOD_STREAMS).await?;
    set_link(world, source, victim, false).await?;
    tokio::time::sleep(CUT).await;
    flood.top_up(TOP_UP).await;
    set_link(world, source, victim, true).await?;
    let flooded = probe(world, &sender, "lockout probe").await?;
    let (held, dropped) = (flood.held, flood.dropped);
    drop(flood);
    Ok(vec![(
        LOCKOUT,
        Verdict::new(
            flooded.is_none(),
            format!(
                "without a flood a message from relay {} to Bob arrived in {} ms; with a stranger holding {held} stalled federation streams on {FLOOD_CONNECTIONS} connections at relay {} ({dropped} more refused or closed), it {}",
                source + 1,
                control.as_millis(),
                victim + 1,
                match flooded {
                    Some(took) => format!("arrived in {} ms", took.as_millis()),
                    None => format!("did not arrive within {} s", DELIVERY_DEADLINE.as_secs()),
                }
            ),
        ),
    )])
}

/// Cuts the link between two relays (every connection closes, none may open) or heals it.
async fn set_link(world: &World, from: usize, to: usize, up: bool) -> anyhow::Result<()> {
    let peer = world.relays[to].peer;
    world.cluster.lock().await.relays[from]
        .set_blocked(peer, !up)
        .await
}

/// Sends `text` to Bob; how long until his client stored it, if within the deadline.
async fn probe(world: &World, sender: &Client, text: &str) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    let mut session = users::connect(sender).await;
    let record = session.send_text("bob", text).await?;
    session.close().await;
    let bob = world.bob();
    let arrived = eventually(DELIVERY_DEADLINE, || {
        Ok(readable(bob, &record.id)?.is_some())
    })
    .await?;
    Ok(arrived.then(|| started.elapsed()))
}
