//! What the multidevice scenario measures beside deliveries: a removed device trying to come
//! back, and how long a read on one device takes to show on the account's other devices.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use tidings_client::{
    Client, ClientError, Conversation, Direction, Event, KEY_FILE, MessageStatus,
};
use tidings_keys::Identity;
use tidings_protocol::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::{
    super::users::name,
    tally::{Plan, Target},
    world::{Dev, World},
};

/// Pause between a removed device's attempts to connect and subscribe.
const PROBE_PAUSE: Duration = Duration::from_millis(500);

/// How long a removed device that did get a subscription listens for what comes.
const PROBE_LISTEN: Duration = Duration::from_secs(1);

/// How long a read may take to show on the other devices before it counts as unconfirmed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the other devices' stores are read while a read travels.
const SYNC_POLL: Duration = Duration::from_millis(10);

/// At most this many reads per user are measured.
const READS_PER_USER: usize = 3;

/// What the removed device got when it tried to come back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Returns {
    /// Times it tried to connect and subscribe.
    pub attempts: usize,
    /// Attempts refused with `device_revoked`, at connect / subscribe or at the register
    /// tried after a `not_registered`.
    pub revoked: usize,
    /// Attempts whose connect or subscribe was answered `not_registered` (the relay dropped
    /// the device's records) rather than `device_revoked`.
    pub not_registered: usize,
    /// Attempts that ended otherwise without a subscription (another refusal, a network
    /// error).
    pub other_failures: usize,
    /// Attempts that got a subscription.
    pub subscribed: usize,
    /// Messages it received on such a subscription.
    pub fetched: usize,
}

fn refused_with(error: &ClientError, code: ErrorCode) -> bool {
    matches!(error, ClientError::Refused(answer) if answer.code == code)
}

/// After a `not_registered`, what a client does next: registers again at its home relay;
/// whether that was refused with `device_revoked`.
async fn register_refused_as_revoked(client: &Client) -> bool {
    let Ok(Some(home)) = client.relay_addr() else {
        return false;
    };
    match client.register(home, None).await {
        Ok(_) => false,
        Err(error) => refused_with(&error, ErrorCode::DeviceRevoked),
    }
}

/// Tries, every [`PROBE_PAUSE`] until `stop`, to connect `client` (a removed device) and
/// subscribe; counts how each try ended and what a subscription brought.
pub async fn removed_device_returns(client: Client, stop: CancellationToken) -> Returns {
    let mut returns = Returns::default();
    while !stop.is_cancelled() {
        returns.attempts += 1;
        let subscribed = match client.connect().await {
            Ok(mut session) => session.subscribe().await.map(|()| session),
            Err(error) => Err(error),
        };
        match subscribed {
            Err(error) if refused_with(&error, ErrorCode::DeviceRevoked) => returns.revoked += 1,
            Err(error) if refused_with(&error, ErrorCode::NotRegistered) => {
                returns.not_registered += 1;
                if register_refused_as_revoked(&client).await {
                    returns.revoked += 1;
                } else {
                    returns.other_failures += 1;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "the removed device failed otherwise than revoked");
                returns.other_failures += 1;
            }
            Ok(mut session) => {
                returns.subscribed += 1;
                let deadline = tokio::time::Instant::now() + PROBE_LISTEN;
                while let Ok(Ok(event)) =
                    tokio::time::timeout_at(deadline, session.next_event()).await
                {
                    if matches!(event, Event::Message(_)) {
                        returns.fetched += 1;
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(PROBE_PAUSE) => {}
        }
    }
    returns
}

/// What the removed device could open of the group messages sent after its removal.
#[derive(Debug, Default, Clone, Copy)]
pub struct GroupKeys {
    /// Group session keys the removed device holds (what it could open before).
    pub held: usize,
    /// Group messages sent after the removal by a device whose current sending session the
    /// removed device holds the key of (it could read them if it got the ciphertext).
    pub readable: usize,
}

/// Checks, for every device that sent to the group after `removed` was removed, that its
/// current sending session is not one the removed device holds a key for.
pub fn removed_device_group_keys(
    world: &World,
    plan: &Plan,
    removed: Dev,
) -> anyhow::Result<GroupKeys> {
    let held: HashSet<String> = world
        .client(removed)
        .store()
        .group_inbound_session_ids(&world.group)?
        .into_iter()
        .collect();
    let mut sent_after: HashMap<Dev, usize> = HashMap::new();
    for planned in plan.values() {
        if planned.after_removal && planned.target == Target::Group {
            *sent_after.entry(planned.sender).or_default() += 1;
        }
    }
    let mut readable = 0;
    for (sender, messages) in sent_after {
        let identity = Identity::load(&world.dirs[sender.0][sender.1].join(KEY_FILE), None)?;
        let current = world
            .client(sender)
            .store()
            .group_outbound_session_id(&world.group, identity.store_key())?;
        if current.is_some_and(|current| held.contains(&current)) {
            tracing::error!(
                ?sender,
                "sends to the group with a session the removed device can open"
            );
            readable += messages;
        }
    }
    Ok(GroupKeys {
        held: held.len(),
        readable,
    })
}

/// Read lags measured, and reads that never showed.
#[derive(Debug, Default)]
pub struct SyncLags {
    /// From `mark_read` on one device until every other device of the account showed the
    /// conversation read, in milliseconds.
    pub lags: Vec<f64>,
    /// Reads that did not show on every other device within [`SYNC_TIMEOUT`].
    pub unconfirmed: usize,
}

/// Whether `client` shows nothing unread from `peer`.
fn all_read(client: &Client, peer: tidings_protocol::UserId) -> anyhow::Result<bool> {
    Ok(client
        .store()
        .history(&Conversation::Direct(peer))?
        .iter()
        .all(|record| {
            record.direction == Direction::Outgoing || record.status != MessageStatus::Received
        }))
}

/// For each account with two or more devices (`removed` aside), reads a few 1:1
/// conversations that hold unread messages, each on another of its devices, and times how
/// long until the other devices (online, subscribed) show them read.
pub async fn sync_lags(world: &World, removed: Option<Dev>) -> anyhow::Result<SyncLags> {
    let mut measured = SyncLags::default();
    for (user, devices) in world.devices.iter().enumerate() {
        let active: Vec<usize> = (0..devices.len())
            .filter(|device| Some((user, *device)) != removed)
            .collect();
        if active.len() < 2 {
            continue;
        }
        let mut reads = 0;
        for peer in (0..world.devices.len()).filter(|peer| *peer != user) {
            if reads == READS_PER_USER {
                break;
            }
            let reader = &devices[active[reads % active.len()]];
            let peer_id = world.devices[peer][0].user_id();
            if all_read(reader, peer_id)? {
                continue;
            }
            let mut session = super::super::users::connect(reader).await;
            let started = Instant::now();
            session.mark_read(&name(peer)).await?;
            session.close().await;
            let others: Vec<&Client> = active
                .iter()
                .map(|device| &devices[*device])
                .filter(|client| client.address() != reader.address())
                .collect();
            let deadline = started + SYNC_TIMEOUT;
            loop {
                let mut done = true;
                for other in &others {
                    done &= all_read(other, peer_id)?;
                }
                if done {
                    measured.lags.push(started.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::error!(user, peer, "a read never showed on the other devices");
                    measured.unconfirmed += 1;
                    break;
                }
                tokio::time::sleep(SYNC_POLL).await;
            }
            reads += 1;
        }
    }
    Ok(measured)
}
