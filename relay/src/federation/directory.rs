//! Where users live: local users from the store, everyone else from the DHT, with a cache
//! of what was found, a short memory of what was not, and a bound on lookups per request.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId};
use tidings_protocol::{HomeRecord, UserId};

use crate::{
    network::NetworkHandle,
    store::{Store, StoreError},
};

/// How long a looked-up home stays cached (a failed forward drops it sooner).
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Most cached lookups.
const CACHE_MAX: usize = 100_000;

/// How long a lookup that found nothing is remembered: asking again sooner runs no query.
const MISS_TTL: Duration = Duration::from_secs(5);

/// Most remembered misses.
const MISS_MAX: usize = 10_000;

/// Most DHT lookups one request may cause; cached answers cost nothing.
pub(crate) const MAX_LOOKUPS_PER_REQUEST: usize = 128;

/// How many DHT lookups a request may still cause. Shared by the lookups of one request,
/// also when they run concurrently.
pub(crate) struct LookupBudget(AtomicUsize);

impl LookupBudget {
    /// What one request may spend.
    pub fn per_request() -> Self {
        Self(AtomicUsize::new(MAX_LOOKUPS_PER_REQUEST))
    }

    /// No bound: for the relay's own work (forwarding its outbox, checking one user).
    pub fn unbounded() -> Self {
        Self(AtomicUsize::new(usize::MAX))
    }

    /// Takes one lookup, if any is left.
    fn spend(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// Where a user's mailbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Home {
    /// Here.
    Local,
    /// At another relay.
    Remote(Remote),
    /// No valid home record found.
    Unknown,
}

/// Whether a user lives at a given other relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HomeCheck {
    /// Their home record names that relay.
    Home,
    /// It names another relay (or this one).
    NotHome,
    /// No valid home record found.
    Unknown,
}

/// Another relay, as a user's home record describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// The relay.
    pub peer: PeerId,
    /// Its addresses (hints from the home record).
    pub addrs: Vec<Multiaddr>,
}

impl Remote {
    /// The relay a home record names, if its peer id parses.
    pub fn of(home: &HomeRecord) -> Option<Remote> {
        Some(Remote {
            peer: home.relay.parse().ok()?,
            addrs: home
                .addrs
                .iter()
                .filter_map(|address| address.parse().ok())
                .collect(),
        })
    }
}

/// Resolves users to their home relay.
pub(crate) struct Directory {
    store: Store,
    network: NetworkHandle,
    self_peer: String,
    cache: Mutex<HashMap<UserId, (Remote, Instant)>>,
    /// Users the DHT had no record of, and when it said so.
    misses: Mutex<HashMap<UserId, Instant>>,
}

impl Directory {
    pub fn new(store: Store, network: NetworkHandle) -> Self {
        let self_peer = network.peer_id().to_string();
        Self {
            store,
            network,
            self_peer,
            cache: Mutex::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
        }
    }

    fn missed_recently(&self, user: &UserId) -> bool {
        let misses = self
            .misses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        misses.get(user).is_some_and(|at| at.elapsed() < MISS_TTL)
    }

    fn remember_miss(&self, user: UserId) {
        let mut misses = self
            .misses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if misses.len() >= MISS_MAX {
            misses.retain(|_, at| at.elapsed() < MISS_TTL);
            if misses.len() >= MISS_MAX {
                misses.clear();
            }
        }
        misses.insert(user, Instant::now());
    }

    fn cached(&self, user: &UserId) -> Option<Remote> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        cache
            .get(user)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(remote, _)| remote.clone())
    }

    fn remember(&self, user: UserId, remote: Remote) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(user, (remote, Instant::now()));
    }

    /// Forgets a cached lookup (after a failed forward), so the next resolve asks the DHT.
    pub fn invalidate(&self, user: &UserId) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        cache.remove(user);
        drop(cache);
        self.misses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(user);
    }

    /// Whether `user` is homed here: a store read, never a DHT query.
    pub async fn is_local(&self, user: UserId) -> Result<bool, StoreError> {
        Ok(self
            .store
            .user(user)
            .await?
            .is_some_and(|record| record.is_home(&self.self_peer)))
    }

    /// Whether `user` is homed at the relay `peer`. A cached answer naming another relay is
    /// looked up once more before saying no, so a user who just moved is not refused.
    pub async fn is_home_of(
        &self,
        user: UserId,
        peer: PeerId,
        budget: &LookupBudget,
    ) -> Result<HomeCheck, StoreError> {
        match self.resolve_within(user, budget).await? {
            Home::Remote(remote) if remote.peer == peer => return Ok(HomeCheck::Home),
            Home::Remote(_) => {}
            Home::Local => return Ok(HomeCheck::NotHome),
            Home::Unknown => return Ok(HomeCheck::Unknown),
        }
        self.invalidate(&user);
        Ok(match self.resolve_within(user, budget).await? {
            Home::Remote(remote) if remote.peer == peer => HomeCheck::Home,
            Home::Remote(_) | Home::Local => HomeCheck::NotHome,
            Home::Unknown => HomeCheck::Unknown,
        })
    }

    /// Where `user` lives now.
    pub async fn resolve(&self, user: UserId) -> Result<Home, StoreError> {
        self.resolve_within(user, &LookupBudget::unbounded()).await
    }

    /// Where `user` lives now, running a DHT query only if `budget` has one left and the
    /// DHT did not just come back empty for them.
    pub async fn resolve_within(
        &self,
        user: UserId,
        budget: &LookupBudget,
    ) -> Result<Home, StoreError> {
        let record = self.store.user(user).await?;
        if record
            .as_ref()
            .is_some_and(|record| record.is_home(&self.self_peer))
        {
            return Ok(Home::Local);
        }
        if let Some(remote) = self.cached(&user) {
            return Ok(Home::Remote(remote));
        }
        // A user who moved away told us where; the DHT may know something newer still.
        let mut best = record.and_then(|record| record.home);
        if !self.missed_recently(&user) && budget.spend() {
            match self.network.get_home(user).await {
                Some(found) if best.as_ref().is_none_or(|known| found.seq > known.seq) => {
                    best = Some(found);
                }
                Some(_) => {}
                None => self.remember_miss(user),
            }
        }
        let Some(home) = best else {
            return Ok(Home::Unknown);
        };
        if home.relay == self.self_peer {
            // The DHT says here, but the user is not registered here (yet).
            return Ok(Home::Unknown);
        }
        let Some(remote) = Remote::of(&home) else {
            return Ok(Home::Unknown);
        };
        self.network
            .add_addresses(remote.peer, remote.addrs.clone())
            .await;
        self.remember(user, remote.clone());
        Ok(Home::Remote(remote))
    }
}
