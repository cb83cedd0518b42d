//! Presence and live frames: which local users are online, who watches whom (here and on
//! other relays), and passing presence changes and typing notices to live sessions.
//!
//! Nothing here is stored except each local user's settings and last seen (through the
//! store); watches are renewed by the watching relay, so they come back after a restart.

mod ephemeral;
mod watch;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use libp2p::PeerId;
use tidings_protocol::{
    BoundedVec, UserId,
    client::RelayFrame,
    federation::FederationRequest,
    now_ms,
    presence::{PresenceReport, PresenceState},
};
use tokio::{sync::mpsc, time::Instant};

pub(crate) use ephemeral::{check as check_ephemeral, pass_ephemeral, pass_ephemeral_here};
pub(crate) use watch::{renew_remote_watches, watch, watch_for_relay, watched_from};

use crate::{
    federation::Remote,
    shared::Shared,
    store::{PresenceChange, PresenceRecord, StoreError},
};

/// Frames waiting for one session beyond which live frames to it are dropped (they are
/// ephemeral; the next change or renewal corrects a dropped presence report).
pub(crate) const LIVE_QUEUE: usize = 256;

/// How long passing a presence change to another relay may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(5);

/// One session's identity in the book.
pub(crate) type SessionId = u64;

/// Where live frames for one session go.
pub(crate) type LiveSender = mpsc::Sender<RelayFrame>;

/// Timing of presence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PresenceTiming {
    /// A subscribed device silent for this long is taken as gone.
    pub heartbeat_timeout: Duration,
    /// How long a watch from another relay lasts unless renewed.
    pub watch_ttl: Duration,
}

/// The relay's presence state (in memory).
pub(crate) struct PresenceBook {
    pub timing: PresenceTiming,
    next_session: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Subscribed sessions of local users.
    live: HashMap<UserId, HashMap<SessionId, LiveSender>>,
    /// Settings and last seen of local users, loaded on first use.
    records: HashMap<UserId, PresenceRecord>,
    /// Local sessions watching a user (local or remote): session -> (watcher, sender).
    watchers: HashMap<UserId, HashMap<SessionId, (UserId, LiveSender)>>,
    /// What each session watches.
    watching: HashMap<SessionId, Vec<UserId>>,
    /// Watchers on other relays of local users: (their relay, watcher) -> until when.
    remote_watchers: HashMap<UserId, HashMap<(PeerId, UserId), Instant>>,
    /// Remote users watched from here: their relay, and the last state each watcher got.
    remote_watched: HashMap<UserId, (Remote, HashMap<UserId, PresenceState>)>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl PresenceBook {
    pub fn new(timing: PresenceTiming) -> Self {
        Self {
            timing,
            next_session: AtomicU64::new(1),
            state: Mutex::new(State::default()),
        }
    }

    /// A fresh session id.
    pub fn session_id(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Live senders of a local user's subscribed sessions.
    fn live_senders(&self, user: &UserId) -> Vec<LiveSender> {
        lock(&self.state)
            .live
            .get(user)
            .map(|sessions| sessions.values().cloned().collect())
            .unwrap_or_default()
    }

    fn is_online(&self, user: &UserId) -> bool {
        lock(&self.state)
            .live
            .get(user)
            .is_some_and(|sessions| !sessions.is_empty())
    }
}

/// A local user's record, from memory or the store.
async fn record(shared: &Shared, user: UserId) -> Result<PresenceRecord, StoreError> {
    if let Some(record) = lock(&shared.presence.state).records.get(&user) {
        return Ok(record.clone());
    }
    let record = shared.store.presence(user).await?;
    lock(&shared.presence.state)
        .records
        .entry(user)
        .or_insert_with(|| record.clone());
    Ok(record)
}

/// What `watcher` may see of local user `user` right now.
pub(crate) async fn state_for(
    shared: &Shared,
    watcher: &UserId,
    user: UserId,
) -> Result<PresenceState, StoreError> {
    let record = record(shared, user).await?;
    Ok(visible_state(shared, &record, watcher, user))
}

/// Whether `watcher` may see local user `user`'s presence (an unreadable setting: no).
async fn may_see(shared: &Shared, watcher: &UserId, user: UserId) -> bool {
    *watcher == user
        || record(shared, user)
            .await
            .is_ok_and(|record| record.visibility.permits(watcher, &record.allowed))
}

fn visible_state(
    shared: &Shared,
    record: &PresenceRecord,
    watcher: &UserId,
    user: UserId,
) -> PresenceState {
    if *watcher != user && !record.visibility.permits(watcher, &record.allowed) {
        PresenceState::Hidden
    } else if shared.presence.is_online(&user) {
        PresenceState::Online
    } else {
        PresenceState::Offline {
            last_seen_ms: record.last_seen_ms,
        }
    }
}

/// A local user's device subscribed: the user is online.
pub(crate) async fn connect(
    shared: &Arc<Shared>,
    user: UserId,
    session: SessionId,
    live: LiveSender,
) {
    let first = {
        let mut state = lock(&shared.presence.state);
        let sessions = state.live.entry(user).or_default();
        sessions.insert(session, live);
        sessions.len() == 1
    };
    if first {
        tracing::debug!(%user, "online");
        notify(shared, user, Change::Transition).await;
    }
}

/// A session ended: forget its watches; if it was the user's last, they were last seen now.
pub(crate) async fn disconnect(shared: &Arc<Shared>, user: Option<UserId>, session: SessionId) {
    let last = {
        let mut state = lock(&shared.presence.state);
        forget_watches(&mut state, session);
        let Some(user) = user else { return };
        let Some(sessions) = state.live.get_mut(&user) else {
            return;
        };
        if sessions.remove(&session).is_none() {
            return;
        }
        let last = sessions.is_empty();
        if last {
            state.live.remove(&user);
        }
        last.then_some(user)
    };
    let Some(user) = last else { return };
    let at = now_ms();
    if let Some(record) = lock(&shared.presence.state).records.get_mut(&user) {
        record.last_seen_ms = Some(at);
    }
    tracing::debug!(%user, "offline");
    if let Err(error) = shared
        .store
        .change_presence(user, PresenceChange::LastSeen(at))
        .await
    {
        tracing::warn!(%user, %error, "last seen not stored");
    }
    notify(shared, user, Change::Transition).await;
}

/// Stores who may see `user`'s presence and tells every watcher what they may see now.
pub(crate) async fn set_visibility(
    shared: &Arc<Shared>,
    user: UserId,
    change: PresenceChange,
) -> Result<(), StoreError> {
    shared.store.change_presence(user, change).await?;
    let fresh = shared.store.presence(user).await?;
    lock(&shared.presence.state).records.insert(user, fresh);
    notify(shared, user, Change::Settings).await;
    Ok(())
}

fn forget_watches(state: &mut State, session: SessionId) {
    for user in state.watching.remove(&session).unwrap_or_default() {
        if let Some(watchers) = state.watchers.get_mut(&user) {
            watchers.remove(&session);
            if watchers.is_empty() {
                state.watchers.remove(&user);
                state.remote_watched.remove(&user);
            }
        }
    }
}

/// Why watchers are told about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The user came online or went offline: only watchers allowed to see it are told (a
    /// denied watcher told `Hidden` at each transition would learn them all the same).
    Transition,
    /// The user changed who may see them: everyone is told, so a watcher who lost
    /// permission hears `Hidden` at once.
    Settings,
}

/// Tells everyone watching local user `user` what they may see of them now.
async fn notify(shared: &Arc<Shared>, user: UserId, change: Change) {
    let record = match record(shared, user).await {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(%user, %error, "presence settings unreadable; not telling watchers");
            return;
        }
    };
    let (local, remote) = {
        let mut state = lock(&shared.presence.state);
        let local: Vec<(UserId, LiveSender)> = state
            .watchers
            .get(&user)
            .map(|watchers| watchers.values().cloned().collect())
            .unwrap_or_default();
        let now = Instant::now();
        let mut remote: HashMap<PeerId, Vec<UserId>> = HashMap::new();
        if let Some(watchers) = state.remote_watchers.get_mut(&user) {
            watchers.retain(|_, until| *until > now);
            for (peer, watcher) in watchers.keys() {
                remote.entry(*peer).or_default().push(*watcher);
            }
        }
        (local, remote)
    };
    let untold = |state: &PresenceState| {
        change == Change::Transition && matches!(state, PresenceState::Hidden)
    };
    for (watcher, live) in local {
        let state = visible_state(shared, &record, &watcher, user);
        if untold(&state) {
            continue;
        }
        let _ = live.try_send(RelayFrame::Presence(PresenceReport { user, state }));
    }
    for (peer, watchers) in remote {
        let mut by_state: HashMap<PresenceStateKey, (PresenceState, Vec<UserId>)> = HashMap::new();
        for watcher in watchers {
            let state = visible_state(shared, &record, &watcher, user);
            if untold(&state) {
                continue;
            }
            by_state
                .entry(PresenceStateKey::of(&state))
                .or_insert_with(|| (state, Vec::new()))
                .1
                .push(watcher);
        }
        for (state, watchers) in by_state.into_values() {
            tell_remote(shared, peer, PresenceReport { user, state }, watchers);
        }
    }
}

/// Groups watchers that see the same thing.
#[derive(Hash, PartialEq, Eq)]
enum PresenceStateKey {
    Online,
    Offline(Option<u64>),
    Hidden,
}

impl PresenceStateKey {
    fn of(state: &PresenceState) -> Self {
        match state {
            PresenceState::Online => Self::Online,
            PresenceState::Offline { last_seen_ms } => Self::Offline(*last_seen_ms),
            PresenceState::Hidden => Self::Hidden,
        }
    }
}

/// Sends a presence change to another relay in the background (best effort: the watching
/// relay's next renewal corrects a lost one).
fn tell_remote(shared: &Arc<Shared>, peer: PeerId, report: PresenceReport, watchers: Vec<UserId>) {
    let remote = Remote {
        peer,
        addrs: Vec::new(),
    };
    let shared = shared.clone();
    shared.clone().background.spawn(async move {
        for chunk in watchers.chunks(tidings_protocol::limits::MAX_PRESENCE_WATCHERS) {
            let request = FederationRequest::PresenceChanged {
                report,
                watchers: BoundedVec::new(chunk.to_vec()).unwrap_or_default(),
            };
            let sent = tokio::time::timeout(REMOTE_TIMEOUT, shared.links.request(&remote, request));
            if !matches!(sent.await, Ok(Ok(_))) {
                tracing::debug!(%peer, "presence change not passed on");
                return;
            }
        }
    });
}
