//! The presence book actor. It owns who is online here (the live channels of subscribed
//! sessions), the cached settings and last seen of local users, which local sessions watch
//! whom, which other relays watch our users (until when), and which relay we placed each
//! remote watch with (and what each watcher last heard). Live frames go out with `try_send`,
//! so the actor never waits on a session.

use std::collections::HashMap;

use libp2p::PeerId;
use tidings_protocol::{
    DeviceId, UserId,
    client::RelayFrame,
    now_ms,
    presence::{PresenceReport, PresenceState},
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{Change, LiveSender, SessionId, visible_state};
use crate::{federation::Remote, store::PresenceRecord};

/// Commands queued for the book before callers wait.
pub(super) const BOOK_INBOX: usize = 1024;

/// A change to tell another relay: the report and the watchers there it is for.
pub(super) type RemoteTell = (PeerId, PresenceReport, Vec<UserId>);

/// What the rest of the relay asks of the book.
pub(super) enum Command {
    /// A session of `user`'s `device` subscribed; answers whether it is the user's first.
    Connect {
        user: UserId,
        device: DeviceId,
        session: SessionId,
        live: LiveSender,
        reply: oneshot::Sender<bool>,
    },
    /// A session ended; answers when the user was last seen if it was their last.
    Disconnect {
        user: Option<UserId>,
        session: SessionId,
        reply: oneshot::Sender<Option<u64>>,
    },
    /// The cached record of a local user.
    Record {
        user: UserId,
        reply: oneshot::Sender<Option<PresenceRecord>>,
    },
    /// Caches a record read from the store (`replace`: even over a cached one).
    KeepRecord {
        user: UserId,
        record: PresenceRecord,
        replace: bool,
    },
    /// Whether a local user has a subscribed session.
    Online {
        user: UserId,
        reply: oneshot::Sender<bool>,
    },
    /// The devices of a local user with a subscribed session.
    OnlineDevices {
        user: UserId,
        reply: oneshot::Sender<Vec<DeviceId>>,
    },
    /// The live channels of each user's subscribed sessions.
    LiveSenders {
        users: Vec<UserId>,
        reply: oneshot::Sender<Vec<Vec<LiveSender>>>,
    },
    /// Tells local watchers of `user` what they may see now; answers what to tell other
    /// relays.
    Notify {
        user: UserId,
        record: PresenceRecord,
        change: Change,
        reply: oneshot::Sender<Vec<RemoteTell>>,
    },
    /// A session now watches `users` (instead of what it watched before).
    Watch {
        session: SessionId,
        watcher: UserId,
        live: LiveSender,
        users: Vec<UserId>,
    },
    /// `users` live at `relay`: changes are taken from it alone.
    WatchAt { relay: Remote, users: Vec<UserId> },
    /// What `watcher` was told of remote users; `tell`: pass changes to their sessions.
    Learned {
        reports: Vec<PresenceReport>,
        watcher: UserId,
        tell: bool,
    },
    /// Another relay reports a change of a user homed there to watchers here.
    WatchedFrom {
        peer: PeerId,
        report: PresenceReport,
        watchers: Vec<UserId>,
    },
    /// A watcher at relay `peer` watches local user `user` until `until`.
    WatchedBy {
        user: UserId,
        peer: PeerId,
        watcher: UserId,
        until: Instant,
    },
    /// The watches to renew at other relays: relay, watcher, users.
    RenewalAsks {
        reply: oneshot::Sender<Vec<(Remote, UserId, Vec<UserId>)>>,
    },
}

/// The book's state; [`PresenceBook::run`] serves it.
pub(crate) struct PresenceBook {
    inbox: mpsc::Receiver<Command>,
    /// Subscribed sessions of local users, and the device of each.
    live: HashMap<UserId, HashMap<SessionId, (DeviceId, LiveSender)>>,
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

impl PresenceBook {
    pub(super) fn new(inbox: mpsc::Receiver<Command>) -> Self {
        Self {
            inbox,
            live: HashMap::new(),
            records: HashMap::new(),
            watchers: HashMap::new(),
            watching: HashMap::new(),
            remote_watchers: HashMap::new(),
            remote_watched: HashMap::new(),
        }
    }

    /// Serves commands until every handle is gone or `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        while let Some(command) = crate::actor::next_command(&mut self.inbox, &stop).await {
            self.handle(command);
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Connect {
                user,
                device,
                session,
                live,
                reply,
            } => {
                let sessions = self.live.entry(user).or_default();
                sessions.insert(session, (device, live));
                let _ = reply.send(sessions.len() == 1);
            }
            Command::Disconnect {
                user,
                session,
                reply,
            } => {
                let _ = reply.send(self.disconnect(user, session));
            }
            Command::Record { user, reply } => {
                let _ = reply.send(self.records.get(&user).cloned());
            }
            Command::KeepRecord {
                user,
                record,
                replace,
            } => {
                if replace {
                    self.records.insert(user, record);
                } else {
                    self.records.entry(user).or_insert(record);
                }
            }
            Command::Online { user, reply } => {
                let _ = reply.send(self.is_online(&user));
            }
            Command::OnlineDevices { user, reply } => {
                let mut devices: Vec<DeviceId> = self
                    .live
                    .get(&user)
                    .into_iter()
                    .flat_map(|sessions| sessions.values().map(|(device, _)| *device))
                    .collect();
                devices.sort();
                devices.dedup();
                let _ = reply.send(devices);
            }
            Command::LiveSenders { users, reply } => {
                let senders = users.iter().map(|user| self.live_senders(user)).collect();
                let _ = reply.send(senders);
            }
            Command::Notify {
                user,
                record,
                change,
                reply,
            } => {
                let _ = reply.send(self.notify(user, &record, change));
            }
            Command::Watch {
                session,
                watcher,
                live,
                users,
            } => {
                self.forget_watches(session);
                for user in &users {
                    self.watchers
                        .entry(*user)
                        .or_default()
                        .insert(session, (watcher, live.clone()));
                }
                self.watching.insert(session, users);
            }
            Command::WatchAt { relay, users } => {
                for user in users {
                    self.remote_watched
                        .entry(user)
                        .or_insert_with(|| (relay.clone(), HashMap::new()))
                        .0 = relay.clone();
                }
            }
            Command::Learned {
                reports,
                watcher,
                tell,
            } => {
                for report in reports {
                    if self.remember(&report, watcher) && tell {
                        self.tell_sessions(&report, &watcher);
                    }
                }
            }
            Command::WatchedFrom {
                peer,
                report,
                watchers,
            } => self.watched_from(peer, report, watchers),
            Command::WatchedBy {
                user,
                peer,
                watcher,
                until,
            } => {
                self.remote_watchers
                    .entry(user)
                    .or_default()
                    .insert((peer, watcher), until);
            }
            Command::RenewalAsks { reply } => {
                let _ = reply.send(self.renewal_asks());
            }
        }
    }

    fn live_senders(&self, user: &UserId) -> Vec<LiveSender> {
        self.live
            .get(user)
            .map(|sessions| sessions.values().map(|(_, live)| live.clone()).collect())
            .unwrap_or_default()
    }

    fn is_online(&self, user: &UserId) -> bool {
        self.live
            .get(user)
            .is_some_and(|sessions| !sessions.is_empty())
    }

    /// Forgets the session's watches; if it was its user's last, they were last seen now.
    fn disconnect(&mut self, user: Option<UserId>, session: SessionId) -> Option<u64> {
        self.forget_watches(session);
        let user = user?;
        let sessions = self.live.get_mut(&user)?;
        sessions.remove(&session)?;
        if !sessions.is_empty() {
            return None;
        }
        self.live.remove(&user);
        let at = now_ms();
        if let Some(record) = self.records.get_mut(&user) {
            record.last_seen_ms = Some(at);
        }
        Some(at)
    }

    fn forget_watches(&mut self, session: SessionId) {
        for user in self.watching.remove(&session).unwrap_or_default() {
            if let Some(watchers) = self.watchers.get_mut(&user) {
                watchers.remove(&session);
                if watchers.is_empty() {
                    self.watchers.remove(&user);
                    self.remote_watched.remove(&user);
                }
            }
        }
    }

    /// Tells local watchers of `user`; returns what other relays' watchers are to be told,
    /// grouped by relay and by what they may see.
    fn notify(&mut self, user: UserId, record: &PresenceRecord, change: Change) -> Vec<RemoteTell> {
        let online = self.is_online(&user);
        let untold = |state: &PresenceState| {
            change == Change::Transition && matches!(state, PresenceState::Hidden)
        };
        for (watcher, live) in self
            .watchers
            .get(&user)
            .into_iter()
            .flat_map(|w| w.values())
        {
            let state = visible_state(record, watcher, user, online);
            if untold(&state) {
                continue;
            }
            let _ = live.try_send(Box::new(RelayFrame::Presence(PresenceReport {
                user,
                state,
            })));
        }
        let now = Instant::now();
        let mut remote: HashMap<PeerId, Vec<UserId>> = HashMap::new();
        if let Some(watchers) = self.remote_watchers.get_mut(&user) {
            watchers.retain(|_, until| *until > now);
            for (peer, watcher) in watchers.keys() {
                remote.entry(*peer).or_default().push(*watcher);
            }
        }
        let mut tells = Vec::new();
        for (peer, watchers) in remote {
            let mut by_state: HashMap<PresenceStateKey, (PresenceState, Vec<UserId>)> =
                HashMap::new();
            for watcher in watchers {
                let state = visible_state(record, &watcher, user, online);
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
                tells.push((peer, PresenceReport { user, state }, watchers));
            }
        }
        tells
    }

    /// Records the state `watcher` last got for a remote user; returns whether it changed.
    fn remember(&mut self, report: &PresenceReport, watcher: UserId) -> bool {
        match self.remote_watched.get_mut(&report.user) {
            Some((_, seen)) => seen.insert(watcher, report.state) != Some(report.state),
            None => false,
        }
    }

    /// Passes `report` to the sessions of `watcher` watching its user.
    fn tell_sessions(&self, report: &PresenceReport, watcher: &UserId) {
        let sessions = self.watchers.get(&report.user).into_iter();
        for (_, live) in sessions
            .flat_map(|sessions| sessions.values())
            .filter(|(who, _)| who == watcher)
        {
            let _ = live.try_send(Box::new(RelayFrame::Presence(*report)));
        }
    }

    /// Only the relay we placed the watch with is listened to.
    fn watched_from(&mut self, peer: PeerId, report: PresenceReport, watchers: Vec<UserId>) {
        let from_home = self
            .remote_watched
            .get(&report.user)
            .is_some_and(|(relay, _)| relay.peer == peer);
        if !from_home {
            tracing::debug!(%peer, user = %report.user, "ignoring presence from a relay we did not ask");
            return;
        }
        for watcher in watchers {
            if self.remember(&report, watcher) {
                self.tell_sessions(&report, &watcher);
            }
        }
    }

    fn renewal_asks(&self) -> Vec<(Remote, UserId, Vec<UserId>)> {
        let mut asks: HashMap<(PeerId, UserId), (Remote, Vec<UserId>)> = HashMap::new();
        for (user, (relay, _)) in &self.remote_watched {
            for (watcher, _) in self.watchers.get(user).into_iter().flat_map(|s| s.values()) {
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

#[cfg(test)]
mod tests {
    use tidings_protocol::presence::Visibility;

    use super::*;

    fn ask<T>(book: &mut PresenceBook, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (reply, mut answer) = oneshot::channel();
        book.handle(command(reply));
        answer.try_recv().expect("the book answers at once")
    }

    fn record(visibility: Visibility) -> PresenceRecord {
        PresenceRecord {
            visibility,
            allowed: Vec::new(),
            last_seen_ms: None,
        }
    }

    #[test]
    fn a_user_is_online_from_their_first_session_to_their_last() {
        let (_inbox, commands) = mpsc::channel(1);
        let mut book = PresenceBook::new(commands);
        let user = UserId::from_bytes([1; 32]);
        let (live, _frames) = mpsc::channel(4);
        for (session, first) in [(1, true), (2, false)] {
            let live = live.clone();
            let connected = ask(&mut book, |reply| Command::Connect {
                user,
                device: DeviceId::from_bytes([session as u8; 32]),
                session,
                live,
                reply,
            });
            assert_eq!(connected, first);
        }
        let gone = |session| {
            move |reply| Command::Disconnect {
                user: Some(user),
                session,
                reply,
            }
        };
        let online =
            |book: &mut PresenceBook| ask(book, |reply| Command::OnlineDevices { user, reply });
        assert_eq!(
            online(&mut book),
            [DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32])]
        );
        assert_eq!(ask(&mut book, gone(1)), None);
        assert!(ask(&mut book, |reply| Command::Online { user, reply }));
        assert_eq!(online(&mut book), [DeviceId::from_bytes([2; 32])]);
        assert!(ask(&mut book, gone(2)).is_some());
        assert!(!ask(&mut book, |reply| Command::Online { user, reply }));
        assert!(online(&mut book).is_empty());
    }

    #[test]
    fn a_hidden_watcher_hears_of_settings_but_never_of_transitions() {
        let (_inbox, commands) = mpsc::channel(1);
        let mut book = PresenceBook::new(commands);
        let (user, watcher) = (UserId::from_bytes([1; 32]), UserId::from_bytes([2; 32]));
        let (live, mut frames) = mpsc::channel(4);
        book.handle(Command::Watch {
            session: 9,
            watcher,
            live,
            users: vec![user],
        });
        let notify = |change| {
            move |reply| Command::Notify {
                user,
                record: record(Visibility::Nobody),
                change,
                reply,
            }
        };
        assert!(ask(&mut book, notify(Change::Transition)).is_empty());
        assert!(frames.try_recv().is_err());
        assert!(ask(&mut book, notify(Change::Settings)).is_empty());
        let Ok(RelayFrame::Presence(report)) = frames.try_recv().map(|frame| *frame) else {
            panic!("the watcher hears the new settings");
        };
        assert_eq!(report.state, PresenceState::Hidden);
    }
}
