//! Watches: a local session watching users anywhere, another relay watching our users,
//! changes coming back from other relays, and renewing the watches we hold elsewhere.

use std::{collections::HashMap, sync::Arc};

use libp2p::PeerId;
use tidings_protocol::{
    BoundedVec, ErrorAnswer, ErrorCode, UserId,
    client::RelayFrame,
    federation::{FederationRequest, FederationResponse},
    limits::MAX_PRESENCE_WATCH,
    presence::{PresenceReport, PresenceState},
};
use tokio::time::Instant;

use super::{LiveSender, SessionId, State, forget_watches, lock, state_for};
use crate::{
    federation::{Home, LookupBudget, Remote},
    shared::Shared,
};

/// A session of `watcher` now watches `users` (instead of what it watched before). Returns
/// what the watcher may see of each, in order; changes follow on `live`.
pub(crate) async fn watch(
    shared: &Arc<Shared>,
    session: SessionId,
    watcher: UserId,
    live: LiveSender,
    users: Vec<UserId>,
) -> Vec<PresenceReport> {
    {
        let mut state = lock(&shared.presence.state);
        forget_watches(&mut state, session);
        for user in &users {
            state
                .watchers
                .entry(*user)
                .or_default()
                .insert(session, (watcher, live.clone()));
        }
        state.watching.insert(session, users.clone());
    }
    let mut states: HashMap<UserId, PresenceState> = HashMap::new();
    let mut remote: HashMap<PeerId, (Remote, Vec<UserId>)> = HashMap::new();
    let budget = LookupBudget::per_request();
    for user in &users {
        let home = shared.directory.resolve_within(*user, &budget).await;
        match home {
            Ok(Home::Local) => {
                let state = state_for(shared, &watcher, *user)
                    .await
                    .unwrap_or(PresenceState::Hidden);
                states.insert(*user, state);
            }
            Ok(Home::Remote(relay)) => {
                remote
                    .entry(relay.peer)
                    .or_insert_with(|| (relay, Vec::new()))
                    .1
                    .push(*user);
            }
            Ok(Home::Unknown) | Err(_) => {}
        }
    }
    for (relay, asked) in remote.into_values() {
        {
            let mut state = lock(&shared.presence.state);
            for user in &asked {
                state
                    .remote_watched
                    .entry(*user)
                    .or_insert_with(|| (relay.clone(), HashMap::new()))
                    .0 = relay.clone();
            }
        }
        for report in ask_remote(shared, &relay, watcher, asked).await {
            remember(&mut lock(&shared.presence.state), &report, watcher);
            states.insert(report.user, report.state);
        }
    }
    users
        .iter()
        .map(|user| PresenceReport {
            user: *user,
            state: states.get(user).copied().unwrap_or(PresenceState::Hidden),
        })
        .collect()
}

/// Asks `relay` for what `watcher` may see of `users` (and to keep telling us).
async fn ask_remote(
    shared: &Shared,
    relay: &Remote,
    watcher: UserId,
    users: Vec<UserId>,
) -> Vec<PresenceReport> {
    let Ok(users) = BoundedVec::<UserId, MAX_PRESENCE_WATCH>::new(users) else {
        return Vec::new();
    };
    match shared
        .links
        .request(relay, FederationRequest::WatchPresence { watcher, users })
        .await
    {
        Ok(FederationResponse::Presence { reports }) => reports.into_vec(),
        Ok(other) => {
            tracing::debug!(peer = %relay.peer, ?other, "unexpected answer to a presence watch");
            Vec::new()
        }
        Err(error) => {
            tracing::debug!(peer = %relay.peer, %error, "presence watch not placed; renewal retries");
            Vec::new()
        }
    }
}

/// Records the state `watcher` last got for a remote user; returns whether it changed.
fn remember(state: &mut State, report: &PresenceReport, watcher: UserId) -> bool {
    match state.remote_watched.get_mut(&report.user) {
        Some((_, seen)) => seen.insert(watcher, report.state) != Some(report.state),
        None => false,
    }
}

/// The sessions of `watcher` watching `user`.
fn sessions_of(state: &State, user: &UserId, watcher: &UserId) -> Vec<LiveSender> {
    state
        .watchers
        .get(user)
        .map(|sessions| {
            sessions
                .values()
                .filter(|(who, _)| who == watcher)
                .map(|(_, live)| live.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Another relay tells us a user homed there changed, for these watchers of ours. Only
/// the relay we placed the watch with is listened to.
pub(crate) fn watched_from(
    shared: &Shared,
    peer: PeerId,
    report: PresenceReport,
    watchers: Vec<UserId>,
) {
    let mut live = Vec::new();
    {
        let mut state = lock(&shared.presence.state);
        let from_home = state
            .remote_watched
            .get(&report.user)
            .is_some_and(|(relay, _)| relay.peer == peer);
        if !from_home {
            tracing::debug!(%peer, user = %report.user, "ignoring presence from a relay we did not ask");
            return;
        }
        for watcher in watchers {
            if remember(&mut state, &report, watcher) {
                live.extend(sessions_of(&state, &report.user, &watcher));
            }
        }
    }
    for live in live {
        let _ = live.try_send(RelayFrame::Presence(report));
    }
}

/// Another relay asks, for `watcher` homed there, to watch users homed here. The asking
/// relay must be the watcher's home (by their home record), so no relay can watch in
/// someone else's name.
pub(crate) async fn watch_for_relay(
    shared: &Shared,
    peer: PeerId,
    watcher: UserId,
    users: Vec<UserId>,
) -> Result<Vec<PresenceReport>, ErrorAnswer> {
    let home = shared.directory.resolve(watcher).await;
    if !matches!(&home, Ok(Home::Remote(relay)) if relay.peer == peer) {
        return Err(ErrorAnswer::new(
            ErrorCode::WrongRelay,
            format!("{watcher} is not homed at the asking relay"),
        ));
    }
    let until = Instant::now() + shared.presence.timing.watch_ttl;
    let mut reports = Vec::with_capacity(users.len());
    for user in users {
        let state = if matches!(shared.directory.is_local(user).await, Ok(true)) {
            lock(&shared.presence.state)
                .remote_watchers
                .entry(user)
                .or_default()
                .insert((peer, watcher), until);
            state_for(shared, &watcher, user)
                .await
                .unwrap_or(PresenceState::Hidden)
        } else {
            PresenceState::Hidden
        };
        reports.push(PresenceReport { user, state });
    }
    Ok(reports)
}

/// Renews the watches held at other relays, at a third of their lifetime, until shutdown;
/// a relay that restarted (and forgot them) is watched again, and missed changes arrive.
pub(crate) async fn renew_remote_watches(shared: Arc<Shared>) {
    let period = shared.presence.timing.watch_ttl / 3;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let asks: Vec<(Remote, UserId, Vec<UserId>)> = {
            let state = lock(&shared.presence.state);
            let mut asks: HashMap<(PeerId, UserId), (Remote, Vec<UserId>)> = HashMap::new();
            for (user, (relay, _)) in &state.remote_watched {
                for (watcher, _) in state
                    .watchers
                    .get(user)
                    .into_iter()
                    .flat_map(|s| s.values())
                {
                    let entry = asks
                        .entry((relay.peer, *watcher))
                        .or_insert_with(|| (relay.clone(), Vec::new()));
                    if !entry.1.contains(user) {
                        entry.1.push(*user);
                    }
                }
            }
            asks.into_iter()
                .map(|((_, watcher), (relay, users))| (relay, watcher, users))
                .collect()
        };
        for (relay, watcher, users) in asks {
            for chunk in users.chunks(MAX_PRESENCE_WATCH) {
                for report in ask_remote(&shared, &relay, watcher, chunk.to_vec()).await {
                    let live = {
                        let mut state = lock(&shared.presence.state);
                        if remember(&mut state, &report, watcher) {
                            sessions_of(&state, &report.user, &watcher)
                        } else {
                            Vec::new()
                        }
                    };
                    for live in live {
                        let _ = live.try_send(RelayFrame::Presence(report));
                    }
                }
            }
        }
    }
}
