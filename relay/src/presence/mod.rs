//! Presence and live frames: which local users are online, who watches whom (here and on
//! other relays), and passing presence changes and typing notices to live sessions.
//!
//! The state lives in one actor (`book.rs`); [`Presence`] is its handle, and does the slow
//! parts (store reads, lookups, requests to other relays) in the caller's task. Nothing
//! here is stored except each local user's settings and last seen (through the store);
//! watches are renewed by the watching relay, so they come back after a restart.

mod book;
mod ephemeral;
mod watch;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use libp2p::PeerId;
use tidings_protocol::{
    Address, BoundedVec, DeviceId, UserId,
    client::RelayFrame,
    federation::FederationRequest,
    presence::{PresenceReport, PresenceState},
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

pub(crate) use book::PresenceBook;
use book::{BOOK_INBOX, Command};
pub(crate) use ephemeral::check as check_ephemeral;

use crate::{
    federation::{Directory, Links, Remote},
    store::{PresenceChange, PresenceRecord, Store, StoreError},
};

/// Frames waiting for one session beyond which live frames to it are dropped (they are
/// ephemeral; the next change or renewal corrects a dropped presence report).
pub(crate) const LIVE_QUEUE: usize = 256;

/// How long passing a presence change to another relay may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(5);

/// One session's identity in the book.
pub(crate) type SessionId = u64;

/// Where live frames for one session go. Boxed: a channel allocates room for 32 items up
/// front, and every connected device has one (32 pointers rather than 32 frames).
pub(crate) type LiveSender = mpsc::Sender<Box<RelayFrame>>;

/// Timing of presence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PresenceTiming {
    /// A subscribed device silent for this long is taken as gone.
    pub heartbeat_timeout: Duration,
    /// How long a watch from another relay lasts unless renewed.
    pub watch_ttl: Duration,
}

/// A handle on the relay's presence. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Presence {
    book: mpsc::Sender<Command>,
    store: Store,
    directory: Directory,
    links: Links,
    /// Where changes for other relays are sent from (they must not hold up the caller).
    tasks: TaskTracker,
    timing: PresenceTiming,
    next_session: Arc<AtomicU64>,
}

/// Why watchers are told about a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// The user came online or went offline: only watchers allowed to see it are told (a
    /// denied watcher told `Hidden` at each transition would learn them all the same).
    Transition,
    /// The user changed who may see them: everyone is told, so a watcher who lost
    /// permission hears `Hidden` at once.
    Settings,
}

/// What `watcher` may see of local user `user`, given their record and whether they are
/// online.
pub(super) fn visible_state(
    record: &PresenceRecord,
    watcher: &UserId,
    user: UserId,
    online: bool,
) -> PresenceState {
    if *watcher != user && !record.visibility.permits(watcher, &record.allowed) {
        PresenceState::Hidden
    } else if online {
        PresenceState::Online
    } else {
        PresenceState::Offline {
            last_seen_ms: record.last_seen_ms,
        }
    }
}

impl Presence {
    /// The presence handle and its book (spawn [`PresenceBook::run`]); changes for other
    /// relays are sent from tasks on `tasks`.
    pub fn new(
        timing: PresenceTiming,
        store: Store,
        directory: Directory,
        links: Links,
        tasks: TaskTracker,
    ) -> (Self, PresenceBook) {
        let (book, inbox) = mpsc::channel(BOOK_INBOX);
        let presence = Self {
            book,
            store,
            directory,
            links,
            tasks,
            timing,
            next_session: Arc::new(AtomicU64::new(1)),
        };
        (presence, PresenceBook::new(inbox))
    }

    /// How presence is timed.
    pub fn timing(&self) -> PresenceTiming {
        self.timing
    }

    /// A fresh session id.
    pub fn session_id(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a command the book answers; `None` once the book stopped.
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.book.send(command(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Sends a command that needs no answer.
    async fn tell(&self, command: Command) {
        let _ = self.book.send(command).await;
    }

    /// A local user's record, from the book or the store.
    async fn record(&self, user: UserId) -> Result<PresenceRecord, StoreError> {
        if let Some(Some(record)) = self.ask(|reply| Command::Record { user, reply }).await {
            return Ok(record);
        }
        let record = self.store.presence(user).await?;
        self.tell(Command::KeepRecord {
            user,
            record: record.clone(),
            replace: false,
        })
        .await;
        Ok(record)
    }

    /// What `watcher` may see of local user `user` right now.
    pub(crate) async fn state_for(
        &self,
        watcher: &UserId,
        user: UserId,
    ) -> Result<PresenceState, StoreError> {
        let record = self.record(user).await?;
        let online = self
            .ask(|reply| Command::Online { user, reply })
            .await
            .unwrap_or(false);
        Ok(visible_state(&record, watcher, user, online))
    }

    /// Whether `watcher` may see local user `user`'s presence (an unreadable setting: no).
    async fn may_see(&self, watcher: &UserId, user: UserId) -> bool {
        *watcher == user
            || self
                .record(user)
                .await
                .is_ok_and(|record| record.visibility.permits(watcher, &record.allowed))
    }

    /// The devices of local user `user` with a subscribed session now.
    pub(crate) async fn online_devices(&self, user: UserId) -> Vec<DeviceId> {
        self.ask(|reply| Command::OnlineDevices { user, reply })
            .await
            .unwrap_or_default()
    }

    /// A local user's device subscribed: the user is online (while any device is).
    pub(crate) async fn connect(&self, me: Address, session: SessionId, live: LiveSender) {
        let user = me.user;
        let first = self
            .ask(|reply| Command::Connect {
                user,
                device: me.device,
                session,
                live,
                reply,
            })
            .await
            .unwrap_or(false);
        if first {
            tracing::debug!(%user, "online");
            self.notify(user, Change::Transition).await;
        }
    }

    /// A session ended: forget its watches; if it was the user's last, they were last seen
    /// now.
    pub(crate) async fn disconnect(&self, user: Option<UserId>, session: SessionId) {
        let last_seen = self
            .ask(|reply| Command::Disconnect {
                user,
                session,
                reply,
            })
            .await
            .flatten();
        let (Some(user), Some(at)) = (user, last_seen) else {
            return;
        };
        tracing::debug!(%user, "offline");
        if let Err(error) = self
            .store
            .change_presence(user, PresenceChange::LastSeen(at))
            .await
        {
            tracing::warn!(%user, %error, "last seen not stored");
        }
        self.notify(user, Change::Transition).await;
    }

    /// Stores who may see `user`'s presence and tells every watcher what they may see now.
    pub(crate) async fn set_visibility(
        &self,
        user: UserId,
        change: PresenceChange,
    ) -> Result<(), StoreError> {
        self.store.change_presence(user, change).await?;
        let fresh = self.store.presence(user).await?;
        self.tell(Command::KeepRecord {
            user,
            record: fresh,
            replace: true,
        })
        .await;
        self.notify(user, Change::Settings).await;
        Ok(())
    }

    /// Tells everyone watching local user `user` what they may see of them now.
    async fn notify(&self, user: UserId, change: Change) {
        let record = match self.record(user).await {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(%user, %error, "presence settings unreadable; not telling watchers");
                return;
            }
        };
        let tells = self
            .ask(|reply| Command::Notify {
                user,
                record,
                change,
                reply,
            })
            .await
            .unwrap_or_default();
        for (peer, report, watchers) in tells {
            self.tell_remote(peer, report, watchers);
        }
    }

    /// Sends a presence change to another relay in the background (best effort: the
    /// watching relay's next renewal corrects a lost one).
    fn tell_remote(&self, peer: PeerId, report: PresenceReport, watchers: Vec<UserId>) {
        let remote = Remote {
            peer,
            addrs: Vec::new(),
        };
        let links = self.links.clone();
        self.tasks.spawn(async move {
            for chunk in watchers.chunks(tidings_protocol::limits::MAX_PRESENCE_WATCHERS) {
                let request = FederationRequest::PresenceChanged {
                    report,
                    watchers: BoundedVec::new(chunk.to_vec()).unwrap_or_default(),
                };
                let sent = tokio::time::timeout(REMOTE_TIMEOUT, links.request(&remote, request));
                if !matches!(sent.await, Ok(Ok(_))) {
                    tracing::debug!(%peer, "presence change not passed on");
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_channel_holds_pointers_not_frames() {
        let frame = std::mem::size_of::<RelayFrame>();
        assert!(frame >= 32, "a frame is {frame} bytes");
        let item = std::mem::size_of::<Box<RelayFrame>>();
        assert_eq!(item, std::mem::size_of::<usize>());
        let _: fn(LiveSender) -> mpsc::Sender<Box<RelayFrame>> = |sender| sender;
    }
}
