//! The home cache actor. It owns the homes other relays' users were last found at (until
//! the home record found expires) and the users the DHT just had no record of (for
//! `MISS_TTL`); nothing else reads or changes them. Callers run their DHT lookups themselves and report the result,
//! so a slow lookup never holds up another caller.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tidings_protocol::UserId;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::remote::Remote;

/// Commands queued for the cache before callers wait.
const CACHE_INBOX: usize = 1024;

/// Most cached lookups.
const CACHE_MAX: usize = 100_000;

/// How long a lookup that found nothing is remembered: asking again sooner runs no query.
const MISS_TTL: Duration = Duration::from_secs(5);

/// Most remembered misses.
const MISS_MAX: usize = 10_000;

/// How long a home proved wrong (a forward or request refused there, a check that named
/// another relay) makes the next lookup run the whole query: a lookup that stops at the
/// first valid record could meet a stale copy of the very record that proved wrong.
const DOUBT_TTL: Duration = Duration::from_secs(600);

/// Most remembered doubts.
const DOUBT_MAX: usize = 10_000;

/// What the cache knows of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cached {
    /// Found at this relay lately.
    Remote(Remote),
    /// The DHT had no record of them a moment ago.
    MissedRecently,
    /// Where they were found proved wrong lately: a lookup is due, and must ask until the
    /// newest record is known.
    Doubted,
    /// Nothing: a lookup is due.
    Nothing,
}

enum Command {
    Ask {
        user: UserId,
        reply: oneshot::Sender<Cached>,
    },
    Found {
        user: UserId,
        remote: Remote,
        until: Instant,
    },
    Missed {
        user: UserId,
    },
    Forget {
        user: UserId,
    },
}

/// A handle on the home cache. Cheap to clone.
#[derive(Clone)]
pub(super) struct HomeCache {
    inbox: mpsc::Sender<Command>,
}

/// The cache's state; [`HomeCacheActor::run`] serves it.
pub(crate) struct HomeCacheActor {
    inbox: mpsc::Receiver<Command>,
    /// Where each user was found, until when their home record is valid.
    found: HashMap<UserId, (Remote, Instant)>,
    misses: HashMap<UserId, Instant>,
    doubts: HashMap<UserId, Instant>,
}

impl HomeCache {
    /// A cache and the actor that serves it (spawn [`HomeCacheActor::run`]).
    pub fn new() -> (Self, HomeCacheActor) {
        let (inbox, commands) = mpsc::channel(CACHE_INBOX);
        let actor = HomeCacheActor {
            inbox: commands,
            found: HashMap::new(),
            misses: HashMap::new(),
            doubts: HashMap::new(),
        };
        (Self { inbox }, actor)
    }

    /// What the cache knows of `user` (nothing, once the actor stopped).
    pub async fn ask(&self, user: UserId) -> Cached {
        let (reply, answer) = oneshot::channel();
        if self.inbox.send(Command::Ask { user, reply }).await.is_err() {
            return Cached::Nothing;
        }
        answer.await.unwrap_or(Cached::Nothing)
    }

    /// Remembers where `user` was found, until `until` (when the home record that said so
    /// expires; a failed forward forgets it sooner).
    pub async fn found(&self, user: UserId, remote: Remote, until: Instant) {
        let _ = self
            .inbox
            .send(Command::Found {
                user,
                remote,
                until,
            })
            .await;
    }

    /// Remembers that the DHT had no record of `user`.
    pub async fn missed(&self, user: UserId) {
        let _ = self.inbox.send(Command::Missed { user }).await;
    }

    /// Forgets all about `user`, so the next resolve asks the DHT.
    pub async fn forget(&self, user: UserId) {
        let _ = self.inbox.send(Command::Forget { user }).await;
    }
}

impl HomeCacheActor {
    /// Serves commands until every handle is gone or `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        while let Some(command) = crate::actor::next_command(&mut self.inbox, &stop).await {
            match command {
                Command::Ask { user, reply } => {
                    let _ = reply.send(self.ask(&user));
                }
                Command::Found {
                    user,
                    remote,
                    until,
                } => self.found(user, remote, until),
                Command::Missed { user } => self.missed(user),
                Command::Forget { user } => {
                    self.found.remove(&user);
                    self.misses.remove(&user);
                    remember(&mut self.doubts, user, DOUBT_MAX, DOUBT_TTL);
                }
            }
        }
    }

    fn ask(&self, user: &UserId) -> Cached {
        if let Some((remote, _)) = self
            .found
            .get(user)
            .filter(|(_, until)| Instant::now() < *until)
        {
            return Cached::Remote(remote.clone());
        }
        if self
            .misses
            .get(user)
            .is_some_and(|at| at.elapsed() < MISS_TTL)
        {
            return Cached::MissedRecently;
        }
        if self
            .doubts
            .get(user)
            .is_some_and(|at| at.elapsed() < DOUBT_TTL)
        {
            return Cached::Doubted;
        }
        Cached::Nothing
    }

    fn found(&mut self, user: UserId, remote: Remote, until: Instant) {
        if self.found.len() >= CACHE_MAX {
            let now = Instant::now();
            self.found.retain(|_, (_, until)| now < *until);
            if self.found.len() >= CACHE_MAX {
                self.found.clear();
            }
        }
        self.doubts.remove(&user);
        self.found.insert(user, (remote, until));
    }

    fn missed(&mut self, user: UserId) {
        remember(&mut self.misses, user, MISS_MAX, MISS_TTL);
    }
}

/// Notes `user` now in `times`, dropping notes older than `ttl` (or all) when it is full.
fn remember(times: &mut HashMap<UserId, Instant>, user: UserId, max: usize, ttl: Duration) {
    if times.len() >= max {
        times.retain(|_, at| at.elapsed() < ttl);
        if times.len() >= max {
            times.clear();
        }
    }
    times.insert(user, Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(seed: u8) -> Remote {
        let key = libp2p::identity::Keypair::ed25519_from_bytes([seed; 32])
            .expect("a 32-byte seed makes a key");
        Remote {
            peer: key.public().to_peer_id(),
            addrs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn finds_misses_and_doubts_are_remembered() {
        let (cache, actor) = HomeCache::new();
        let stop = CancellationToken::new();
        let serving = tokio::spawn(actor.run(stop.clone()));
        let (alice, bob) = (UserId::from_bytes([1; 32]), UserId::from_bytes([2; 32]));

        assert_eq!(cache.ask(alice).await, Cached::Nothing);
        let hour = Instant::now() + Duration::from_secs(3600);
        cache.found(alice, remote(7), hour).await;
        cache.missed(bob).await;
        assert_eq!(cache.ask(alice).await, Cached::Remote(remote(7)));
        assert_eq!(cache.ask(bob).await, Cached::MissedRecently);
        // A home whose record expired is not served from the cache.
        let carol = UserId::from_bytes([3; 32]);
        cache.found(carol, remote(8), Instant::now()).await;
        assert_eq!(cache.ask(carol).await, Cached::Nothing);

        // A home forgotten (it proved wrong) is doubted: the next lookup runs whole, and
        // a home found again ends the doubt.
        cache.forget(alice).await;
        cache.forget(bob).await;
        assert_eq!(cache.ask(alice).await, Cached::Doubted);
        assert_eq!(cache.ask(bob).await, Cached::Doubted);
        cache.found(alice, remote(9), hour).await;
        assert_eq!(cache.ask(alice).await, Cached::Remote(remote(9)));
        cache.forget(alice).await;
        cache.missed(alice).await;
        assert_eq!(cache.ask(alice).await, Cached::MissedRecently);

        stop.cancel();
        let _ = serving.await;
        // A stopped cache knows nothing, and callers go on without it.
        assert_eq!(cache.ask(alice).await, Cached::Nothing);
    }
}
