//! Where users live: local users from the store, everyone else from the DHT, with a cache
//! of what was found (while its home record is valid) and a short memory of what was not (the
//! `home_cache` actor), and a bound on lookups per request.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use libp2p::PeerId;
use tidings_protocol::{UserId, home::HOME_RECORD_LIFETIME_MS, now_ms};

use super::home_cache::{Cached, HomeCache, HomeCacheActor};
use super::remote::Remote;
use crate::network::Lookup;
use crate::{
    network::NetworkHandle,
    store::{Store, StoreError},
};

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

/// Resolves users to their home relay. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Directory {
    store: Store,
    network: NetworkHandle,
    self_peer: String,
    cache: HomeCache,
}

impl Directory {
    /// A directory and the actor owning its cache (spawn [`HomeCacheActor::run`]).
    pub fn new(store: Store, network: NetworkHandle) -> (Self, HomeCacheActor) {
        let self_peer = network.peer_id().to_string();
        let (cache, actor) = HomeCache::new();
        let directory = Self {
            store,
            network,
            self_peer,
            cache,
        };
        (directory, actor)
    }

    /// This relay's peer id, as home records name it.
    pub fn self_peer(&self) -> &str {
        &self.self_peer
    }

    /// Forgets a cached lookup (after a failed forward), so the next resolve asks the DHT.
    pub async fn invalidate(&self, user: &UserId) {
        self.cache.forget(*user).await;
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
        self.invalidate(&user).await;
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
    /// DHT did not just come back empty for them. The query runs here, in the caller's
    /// task: other callers go on meanwhile.
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
        let cached = self.cache.ask(user).await;
        if let Cached::Remote(remote) = cached {
            return Ok(Home::Remote(remote));
        }
        // A user who moved away told us where; the DHT may know something newer still.
        let mut best = record.and_then(|record| record.home);
        if cached != Cached::MissedRecently && budget.spend() {
            let lookup = if cached == Cached::Doubted {
                Lookup::Whole
            } else {
                Lookup::FirstValid
            };
            match self.network.get_home(user, lookup).await {
                Some(found) if best.as_ref().is_none_or(|known| found.seq > known.seq) => {
                    best = Some(found);
                }
                Some(_) => {}
                None => self.cache.missed(user).await,
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
        // Cached while the record is valid; a signer may choose any expiry, so at most the
        // lifetime clients give their records.
        let valid_for = Duration::from_millis(
            home.expires_at_ms
                .saturating_sub(now_ms())
                .min(HOME_RECORD_LIFETIME_MS),
        );
        let until = Instant::now()
            .checked_add(valid_for)
            .unwrap_or_else(Instant::now);
        self.cache.found(user, remote.clone(), until).await;
        Ok(Home::Remote(remote))
    }
}
