//! Home records in the DHT: validated before they are stored or used, newest sequence wins.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use libp2p::{
    PeerId,
    kad::{
        self, GetRecordOk, QueryId, QueryResult, QueryStats, Quorum, Record, RecordKey,
        store::RecordStore,
    },
};
use tidings_protocol::{HomeRecord, UserId, now_ms};
use tokio::sync::oneshot;

use super::{
    DhtStats, LookupStats, MAX_RECORD_HOLD,
    record_store::{BoundedStore, Refused},
};

/// A lookup in flight, possibly asked for by several callers.
struct PendingGet {
    user: UserId,
    best: Option<HomeRecord>,
    /// Requests sent and time spent when the first valid record came.
    first_record: Option<(u32, Duration)>,
    replies: Vec<oneshot::Sender<(Option<HomeRecord>, LookupStats)>>,
}

/// The DHT side of the event loop.
pub(super) struct Dht {
    gets: HashMap<QueryId, PendingGet>,
    by_user: HashMap<UserId, QueryId>,
    stats: Arc<DhtStats>,
}

fn key_of(user: &UserId) -> RecordKey {
    RecordKey::new(&HomeRecord::dht_key(user))
}

/// A kad record holding `home`, expiring when the signed record does but held at most
/// `hold`: a signer may choose any expiry, the store does not keep a record that long.
fn kad_record(home: &HomeRecord, hold: Duration) -> Record {
    let left = Duration::from_millis(home.expires_at_ms.saturating_sub(now_ms()));
    let mut record = Record::new(key_of(&home.user), home.encode());
    record.expires = Instant::now().checked_add(left.min(hold));
    record
}

/// Keeps the newer of two valid records.
fn newer(current: Option<HomeRecord>, candidate: HomeRecord) -> Option<HomeRecord> {
    match current {
        Some(current) if current.seq >= candidate.seq => Some(current),
        _ => Some(candidate),
    }
}

impl Dht {
    pub fn new(stats: Arc<DhtStats>) -> Self {
        Self {
            gets: HashMap::new(),
            by_user: HashMap::new(),
            stats,
        }
    }

    /// The valid record stored locally under `key`, if any.
    fn local(store: &mut BoundedStore, key: &RecordKey) -> Option<HomeRecord> {
        let record = store.get(key)?;
        HomeRecord::decode_verified(key.as_ref(), &record.value, now_ms()).ok()
    }

    /// Stores a validated record locally (if it is not older than what is there) and
    /// publishes it.
    pub fn put_home(&mut self, kad: &mut kad::Behaviour<BoundedStore>, home: &HomeRecord) {
        let key = key_of(&home.user);
        if let Some(known) = Self::local(kad.store_mut(), &key)
            && home.supersedes(&known).is_err()
        {
            tracing::debug!(user = %home.user, "not publishing a home record older than the one held");
            return;
        }
        let hold = Duration::from_millis(tidings_protocol::home::HOME_RECORD_LIFETIME_MS);
        match kad.put_record(kad_record(home, hold), Quorum::One) {
            Ok(_) => {
                self.stats.stored.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "cannot store a home record"),
        }
    }

    /// Starts (or joins) a lookup of `user`'s home record.
    pub fn get_home(
        &mut self,
        kad: &mut kad::Behaviour<BoundedStore>,
        user: UserId,
        reply: oneshot::Sender<(Option<HomeRecord>, LookupStats)>,
    ) {
        if let Some(pending) = self.by_user.get(&user).and_then(|id| self.gets.get_mut(id)) {
            pending.replies.push(reply);
            return;
        }
        let id = kad.get_record(key_of(&user));
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        self.by_user.insert(user, id);
        self.gets.insert(
            id,
            PendingGet {
                user,
                best: None,
                first_record: None,
                replies: vec![reply],
            },
        );
    }

    /// Validates a record peer `source` wants us to store (Kademlia's inbound PUT), and
    /// stores it within the store's limits: a record is vouched for when `source` is the
    /// relay it names as home.
    pub fn on_inbound_put(
        &mut self,
        kad: &mut kad::Behaviour<BoundedStore>,
        source: PeerId,
        record: Record,
    ) {
        let verdict = HomeRecord::decode_verified(record.key.as_ref(), &record.value, now_ms())
            .and_then(|home| match Self::local(kad.store_mut(), &record.key) {
                Some(known) => home.supersedes(&known).map(|()| home),
                None => Ok(home),
            });
        match verdict {
            Ok(home) => {
                let vouched = home.relay == source.to_string();
                let held = kad_record(&home, MAX_RECORD_HOLD);
                if let Err(refused) = kad.store_mut().put_from(held, source, vouched) {
                    self.stats.over_limit.fetch_add(1, Ordering::Relaxed);
                    let why = match refused {
                        Refused::PublisherLimit => "the peer has its share of records here",
                        Refused::Full => "the record store is full",
                    };
                    tracing::debug!(%source, vouched, why, "not storing a home record");
                    return;
                }
                self.stats.stored.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%error, "refused a home record from the DHT");
            }
        }
    }

    /// Folds a query result (and kad's counts so far) into its lookup; answers when the
    /// query ends.
    pub fn on_query(&mut self, id: QueryId, result: QueryResult, stats: &QueryStats, last: bool) {
        let QueryResult::GetRecord(result) = result else {
            return;
        };
        let Some(pending) = self.gets.get_mut(&id) else {
            return;
        };
        if let Ok(GetRecordOk::FoundRecord(found)) = result {
            let record = found.record;
            match HomeRecord::decode_verified(record.key.as_ref(), &record.value, now_ms()) {
                Ok(home) if home.user == pending.user => {
                    // A record held locally comes before the query has sent anything.
                    pending.first_record.get_or_insert((
                        stats.num_requests(),
                        stats.duration().unwrap_or_default(),
                    ));
                    pending.best = newer(pending.best.take(), home);
                }
                Ok(_) | Err(_) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if last && let Some(done) = self.gets.remove(&id) {
            self.by_user.remove(&done.user);
            let lookup = LookupStats {
                requests: stats.num_requests(),
                successes: stats.num_successes(),
                requests_to_first_record: done.first_record.map(|(requests, _)| requests),
                time_to_first_record: done.first_record.map(|(_, took)| took),
            };
            for reply in done.replies {
                let _ = reply.send((done.best.clone(), lookup));
            }
        }
    }
}
