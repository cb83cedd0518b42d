//! Watches: a local session watching users anywhere, another relay watching our users,
//! changes coming back from other relays, and renewing the watches we hold elsewhere.

use std::collections::HashMap;

use libp2p::PeerId;
use tidings_protocol::{
    BoundedVec, ErrorAnswer, ErrorCode, UserId,
    federation::{FederationRequest, FederationResponse},
    limits::MAX_PRESENCE_WATCH,
    presence::{PresenceReport, PresenceState},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Command, LiveSender, Presence, SessionId};
use crate::federation::{Home, LookupBudget, Remote};

impl Presence {
    /// A session of `watcher` now watches `users` (instead of what it watched before).
    /// Returns what the watcher may see of each, in order; changes follow on `live`.
    pub(crate) async fn watch(
        &self,
        session: SessionId,
        watcher: UserId,
        live: LiveSender,
        users: Vec<UserId>,
    ) -> Vec<PresenceReport> {
        self.tell(Command::Watch {
            session,
            watcher,
            live,
            users: users.clone(),
        })
        .await;
        let mut states: HashMap<UserId, PresenceState> = HashMap::new();
        let mut remote: HashMap<PeerId, (Remote, Vec<UserId>)> = HashMap::new();
        let budget = LookupBudget::per_request();
        for user in &users {
            let home = self.directory.resolve_within(*user, &budget).await;
            match home {
                Ok(Home::Local) => {
                    let state = self
                        .state_for(&watcher, *user)
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
            self.tell(Command::WatchAt {
                relay: relay.clone(),
                users: asked.clone(),
            })
            .await;
            let reports = self.ask_remote(&relay, watcher, asked).await;
            for report in &reports {
                states.insert(report.user, report.state);
            }
            self.tell(Command::Learned {
                reports,
                watcher,
                tell: false,
            })
            .await;
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
        &self,
        relay: &Remote,
        watcher: UserId,
        users: Vec<UserId>,
    ) -> Vec<PresenceReport> {
        let Ok(users) = BoundedVec::<UserId, MAX_PRESENCE_WATCH>::new(users) else {
            return Vec::new();
        };
        match self
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

    /// Another relay tells us a user homed there changed, for these watchers of ours. Only
    /// the relay we placed the watch with is listened to.
    pub(crate) async fn watched_from(
        &self,
        peer: PeerId,
        report: PresenceReport,
        watchers: Vec<UserId>,
    ) {
        self.tell(Command::WatchedFrom {
            peer,
            report,
            watchers,
        })
        .await;
    }

    /// Another relay asks, for `watcher` homed there, to watch users homed here. The asking
    /// relay must be the watcher's home (by their home record), so no relay can watch in
    /// someone else's name.
    pub(crate) async fn watch_for_relay(
        &self,
        peer: PeerId,
        watcher: UserId,
        users: Vec<UserId>,
    ) -> Result<Vec<PresenceReport>, ErrorAnswer> {
        let home = self.directory.resolve(watcher).await;
        if !matches!(&home, Ok(Home::Remote(relay)) if relay.peer == peer) {
            return Err(ErrorAnswer::new(
                ErrorCode::WrongRelay,
                format!("{watcher} is not homed at the asking relay"),
            ));
        }
        let until = Instant::now() + self.timing.watch_ttl;
        let mut reports = Vec::with_capacity(users.len());
        for user in users {
            let state = if matches!(self.directory.is_local(user).await, Ok(true)) {
                self.tell(Command::WatchedBy {
                    user,
                    peer,
                    watcher,
                    until,
                })
                .await;
                self.state_for(&watcher, user)
                    .await
                    .unwrap_or(PresenceState::Hidden)
            } else {
                PresenceState::Hidden
            };
            reports.push(PresenceReport { user, state });
        }
        Ok(reports)
    }

    /// Renews the watches held at other relays, at a third of their lifetime, until `stop`;
    /// a relay that restarted (and forgot them) is watched again, and missed changes arrive.
    pub(crate) async fn renew_remote_watches(self, stop: CancellationToken) {
        let period = self.timing.watch_ttl / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let asks = self
                .ask(|reply| Command::RenewalAsks { reply })
                .await
                .unwrap_or_default();
            for (relay, watcher, users) in asks {
                for chunk in users.chunks(MAX_PRESENCE_WATCH) {
                    let reports = self.ask_remote(&relay, watcher, chunk.to_vec()).await;
                    self.tell(Command::Learned {
                        reports,
                        watcher,
                        tell: true,
                    })
                    .await;
                }
            }
        }
    }
}
