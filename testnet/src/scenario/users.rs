//! Scenario users: clients in this process, each with a receiving session that can go
//! offline, and a sender that works through a list in order.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use anyhow::ensure;
use tidings_client::{Client, Session};
use tidings_protocol::GroupId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;

/// How long a sender keeps retrying what is still pending after its list is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Contact name of user `index` in every scenario user's address book.
pub fn name(index: usize) -> String {
    format!("u{index}")
}

/// Makes `count` users under `dir`, user `i` homed on relay `i % relays`.
pub async fn register_all(
    dir: &Path,
    count: usize,
    cluster: &Cluster,
) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(count);
    for index in 0..count {
        let client = Client::init(&dir.join(name(index)), None)?;
        let relay = &cluster.relays[index % cluster.relays.len()];
        tokio::time::timeout(
            Duration::from_secs(30),
            client.register(relay.addr.clone(), None),
        )
        .await
        .context("registering timed out")??;
        clients.push(client);
    }
    Ok(clients)
}

/// Makes every user a contact of every other, user `i` named [`name`]`(i)`.
pub fn introduce_all(clients: &[Client]) -> anyhow::Result<()> {
    let cards = clients
        .iter()
        .map(|client| client.card(None))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, client) in clients.iter().enumerate() {
        for (other, card) in cards.iter().enumerate() {
            if other != index {
                client.add_contact(&name(other), card)?;
            }
        }
    }
    Ok(())
}

pub async fn connect(client: &Client) -> Session {
    let mut pause = Duration::from_millis(50);
    loop {
        match client.connect().await {
            Ok(session) => return session,
            Err(error) => {
                tracing::debug!(%error, "scenario user cannot connect yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Keeps a subscribed session while `online` says so, until `stop`.
pub async fn receive(client: Client, mut online: watch::Receiver<bool>, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        if !*online.borrow_and_update() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = online.changed() => continue,
            }
        }
        let mut session = connect(&client).await;
        if session.subscribe().await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = online.changed() => {
                    if changed.is_err() || !*online.borrow() {
                        break;
                    }
                }
                event = session.next_event() => {
                    if event.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// Sends `messages` (contact or group name, text) in order, then retries whatever is
/// pending.
pub async fn send(client: Client, messages: Vec<(String, String)>) {
    let mut session = connect(&client).await;
    for (target, text) in messages {
        if let Err(error) = session.send_text(&target, &text).await {
            // Queued before the attempt: the drain below sends it.
            tracing::debug!(%error, "send failed; reconnecting");
            session = connect(&client).await;
        }
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        match client.store().pending(1) {
            Ok(pending) if pending.is_empty() => return,
            _ => {}
        }
        if session.flush().await.is_err() {
            session = connect(&client).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (syncing now and then) until `client` has learned of `group`.
pub async fn wait_for_group(client: &Client, group: GroupId) -> anyhow::Result<()> {
    wait_for_group_version(client, group, 1, Duration::from_secs(60)).await
}

/// Waits (syncing now and then, at most `patience`) until `client` holds `version` or a later
/// version of `group`.
pub async fn wait_for_group_version(
    client: &Client,
    group: GroupId,
    version: u64,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    while client
        .store()
        .group(&group)?
        .is_none_or(|held| held.descriptor.version < version)
    {
        ensure!(
            Instant::now() < deadline,
            "a member never learned of version {version} of the group"
        );
        let mut session = connect(client).await;
        let _ = session.sync(Duration::from_secs(2)).await;
    }
    Ok(())
}
