//! Token buckets that bound how fast one user, or one other relay, may hand over envelopes.
//!
//! A bucket holds up to `burst` tokens and refills at `per_sec`; each envelope takes one.
//! A request takes what is there for its first envelopes (so what passes keeps the sender's
//! order) and the rest is refused with `rate_limited`, which senders retry later.
//!
//! Memory stays bounded: a full bucket is the same as no bucket, so full buckets are swept
//! out periodically, and the map never holds more than its capacity. When it is full of
//! senders that are all still refilling, a new sender is refused until room frees up.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

use libp2p::PeerId;
use tidings_protocol::UserId;

use crate::{
    config::{LimitsConfig, RegistrationConfig},
    sources::Source,
};

/// Most users tracked at once (about 64 bytes each).
const MAX_TRACKED_USERS: usize = 1 << 18;

/// KiB of group descriptors another relay may make this relay keep, per second and at once
/// (a descriptor is at most 60 KiB).
const DESCRIPTOR_KIB_PER_SEC: u64 = 64;
const DESCRIPTOR_KIB_BURST: u64 = 2048;

/// Most network sources tracked at once for registrations.
const MAX_TRACKED_SOURCES: usize = 1 << 16;

/// Most other relays tracked at once.
const MAX_TRACKED_RELAYS: usize = 1 << 14;

/// Shortest time between two sweeps of full buckets.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Longest time between two sweeps of full buckets.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
    last_sweep: Instant,
}

/// Token buckets keyed by sender.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    per_sec: f64,
    burst: f64,
    capacity: usize,
    sweep_every: Duration,
    buckets: Mutex<Buckets<K>>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// Buckets of `burst` tokens refilling at `per_sec`, for at most `capacity` senders.
    pub fn new(per_sec: u64, burst: u64, capacity: usize) -> Self {
        Self::with_rate(per_sec.max(1) as f64, burst, capacity)
    }

    /// Buckets of `burst` tokens refilling at `per_hour`, for at most `capacity` senders.
    pub fn per_hour(per_hour: u64, burst: u64, capacity: usize) -> Self {
        Self::with_rate(per_hour.max(1) as f64 / 3600.0, burst, capacity)
    }

    fn with_rate(per_sec: f64, burst: u64, capacity: usize) -> Self {
        let burst = burst.max(1) as f64;
        // A bucket emptied now is full again after this long: sweeping more often finds none.
        let refill = Duration::from_secs_f64(burst / per_sec);
        Self {
            per_sec,
            burst,
            capacity: capacity.max(1),
            sweep_every: refill.clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Takes tokens for the leading items of a request, `costs` tokens each, as long as they
    /// last; returns how many items got theirs (those may pass, the rest may not).
    pub fn take(&self, key: K, costs: impl IntoIterator<Item = usize>) -> usize {
        self.take_at(key, costs, Instant::now())
    }

    fn take_at(&self, key: K, costs: impl IntoIterator<Item = usize>, now: Instant) -> usize {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let new_when_full = buckets.map.len() >= self.capacity && !buckets.map.contains_key(&key);
        let since_sweep = now.saturating_duration_since(buckets.last_sweep);
        // Periodically, and when a new sender finds the map full (at most once a second).
        if since_sweep >= self.sweep_every || (new_when_full && since_sweep >= MIN_SWEEP_INTERVAL) {
            self.sweep(&mut buckets, now);
        }
        if buckets.map.len() >= self.capacity && !buckets.map.contains_key(&key) {
            tracing::warn!(
                capacity = self.capacity,
                "rate limiter full of active senders; refusing a new one"
            );
            return 0;
        }
        let bucket = buckets.map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.at = now;
        let mut granted = 0;
        for cost in costs {
            let cost = cost as f64;
            if cost > bucket.tokens {
                break;
            }
            bucket.tokens -= cost;
            granted += 1;
        }
        granted
    }

    /// Takes `cost` more tokens for something already let through whose cost was known only
    /// afterwards (a group envelope's entries); the bucket may go into debt, and while it is
    /// in debt nothing more passes.
    pub fn charge(&self, key: K, cost: usize) {
        self.charge_at(key, cost, Instant::now());
    }

    fn charge_at(&self, key: K, cost: usize, now: Instant) {
        if cost == 0 {
            return;
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // A sender the map has no room for was refused by `take` and never got this far.
        if let Some(bucket) = buckets.map.get_mut(&key) {
            bucket.tokens = self.refilled(bucket, now) - cost as f64;
            bucket.at = now;
        }
    }

    /// Whether `key` owes tokens (see [`RateLimiter::charge`]).
    pub fn in_debt(&self, key: K) -> bool {
        self.in_debt_at(key, Instant::now())
    }

    fn in_debt_at(&self, key: K, now: Instant) -> bool {
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        buckets
            .map
            .get(&key)
            .is_some_and(|bucket| self.refilled(bucket, now) < 0.0)
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_sec).min(self.burst)
    }

    /// Forgets buckets that are full again: their senders are as if never seen.
    fn sweep(&self, buckets: &mut Buckets<K>, now: Instant) {
        buckets
            .map
            .retain(|_, bucket| self.refilled(bucket, now) < self.burst);
        buckets.last_sweep = now;
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .map
            .len()
    }
}

/// The relay's rate limits: envelopes per user (`Send`) and per other relay (`Forward`).
#[derive(Debug)]
pub(crate) struct RateLimits {
    /// A local user's envelopes, counted once per entry they create (a group envelope once
    /// per member it is stored or queued for).
    pub users: RateLimiter<UserId>,
    /// Another relay's forwarded envelopes, counted once per recipient here.
    pub relays: RateLimiter<PeerId>,
    /// KiB of group descriptors another relay hands over (kept as long as the group).
    pub descriptors: RateLimiter<PeerId>,
    /// New accounts per network source.
    pub registrations: RateLimiter<Source>,
}

impl RateLimits {
    /// Limits as configured.
    pub fn new(limits: &LimitsConfig, registration: &RegistrationConfig) -> Self {
        Self {
            users: RateLimiter::new(
                limits.user_envelopes_per_sec,
                limits.user_envelopes_burst,
                MAX_TRACKED_USERS,
            ),
            relays: RateLimiter::new(
                limits.relay_envelopes_per_sec,
                limits.relay_envelopes_burst,
                MAX_TRACKED_RELAYS,
            ),
            descriptors: RateLimiter::new(
                DESCRIPTOR_KIB_PER_SEC,
                DESCRIPTOR_KIB_BURST,
                MAX_TRACKED_RELAYS,
            ),
            registrations: RateLimiter::per_hour(
                registration.per_source_per_hour,
                registration.per_source_burst,
                MAX_TRACKED_SOURCES,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones(count: usize) -> impl Iterator<Item = usize> {
        std::iter::repeat_n(1, count)
    }

    #[test]
    fn a_bucket_grants_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(10, 20, 8);
        let start = Instant::now();
        assert_eq!(limiter.take_at(1u32, ones(15), start), 15);
        assert_eq!(limiter.take_at(1u32, ones(15), start), 5);
        assert_eq!(limiter.take_at(1u32, ones(1), start), 0);
        // Half a second later: 5 tokens.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take_at(1u32, ones(100), later), 5);
        // Another sender has its own bucket.
        assert_eq!(limiter.take_at(2u32, ones(100), later), 20);
        // Never more than the burst, however long it waited.
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(limiter.take_at(1u32, ones(100), much_later), 20);
    }

    #[test]
    fn items_pass_whole_and_in_order() {
        let limiter = RateLimiter::new(1, 10, 8);
        let start = Instant::now();
        // 4 + 4 fit, the third item (4) does not, and nothing after it passes either.
        assert_eq!(limiter.take_at(1u32, [4, 4, 4, 1], start), 2);
        // The 2 tokens left were not spent on the refused items.
        assert_eq!(limiter.take_at(1u32, [2], start), 1);
    }

    #[test]
    fn a_charge_after_the_fact_puts_the_bucket_in_debt_until_it_refills() {
        let limiter = RateLimiter::new(100, 100, 8);
        let start = Instant::now();
        assert_eq!(limiter.take_at(1u32, ones(1), start), 1);
        assert!(!limiter.in_debt_at(1u32, start));
        limiter.charge_at(1u32, 299, start);
        assert!(limiter.in_debt_at(1u32, start));
        assert_eq!(limiter.take_at(1u32, ones(1), start), 0);
        // 200 tokens owed: paid off after two seconds.
        let later = start + Duration::from_millis(2050);
        assert!(!limiter.in_debt_at(1u32, later));
        assert_eq!(limiter.take_at(1u32, ones(1), later), 1);
        // Unknown senders owe nothing, and a charge does not make them known.
        limiter.charge_at(2u32, 10, start);
        assert!(!limiter.in_debt_at(2u32, start));
    }

    #[test]
    fn the_map_stays_bounded_and_full_buckets_are_forgotten() {
        let limiter = RateLimiter::new(10, 10, 4);
        let start = Instant::now();
        for key in 0..4u32 {
            assert_eq!(limiter.take_at(key, ones(5), start), 5);
        }
        // Full of senders still refilling: a fifth is refused, the others still served.
        assert_eq!(limiter.take_at(4u32, ones(1), start), 0);
        assert_eq!(limiter.take_at(0u32, ones(1), start), 1);
        assert_eq!(limiter.tracked(), 4);
        // Once their buckets are full again they are swept out and room frees up.
        let later = start + Duration::from_secs(2);
        assert_eq!(limiter.take_at(4u32, ones(3), later), 3);
        assert_eq!(limiter.tracked(), 1);
        // A periodic sweep forgets idle senders even when the map is not full.
        let much_later = later + Duration::from_secs(120);
        assert_eq!(limiter.take_at(5u32, ones(1), much_later), 1);
        assert_eq!(limiter.tracked(), 1);
    }
}
