//! Home records in the DHT: validated before they are stored or used; the store keeps the
//! newest sequence, a lookup ends at the first record that validates (or, when asked to run
//! whole, keeps the newest it meets).

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
    DhtStats, Lookup, LookupStats, MAX_RECORD_HOLD,
    record_store::{BoundedStore, Refused},
};

/// A lookup in flight, possibly asked for by several callers.
struct PendingGet {
    user: UserId,
    lookup: Lookup,
    /// A whole lookup's newest valid record so far, and the requests and time it took to
    /// meet the first.
    best: Option<HomeRecord>,
    first: Option<(u32, Duration)>,
    replies: Vec<oneshot::Sender<(Option<HomeRecord>, LookupStats)>>,
}

/// The DHT side of the event loop.
pub(super) struct Dht {
    gets: HashMap<QueryId, PendingGet>,
    /// Lookups in flight by user and kind (callers of the same kind join them).
    by_user: HashMap<(UserId, Lookup), QueryId>,
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

    /// Drops `user`'s home record from the local store, so this relay neither answers
    /// lookups with it nor republishes it (copies elsewhere expire on their own).
    pub fn forget_home(&mut self, kad: &mut kad::Behaviour<BoundedStore>, user: &UserId) {
        kad.remove_record(&key_of(user));
        tracing::info!(%user, "home record forgotten");
    }

    /// Starts (or joins) a lookup of `user`'s home record.
    pub fn get_home(
        &mut self,
        kad: &mut kad::Behaviour<BoundedStore>,
        user: UserId,
        lookup: Lookup,
        reply: oneshot::Sender<(Option<HomeRecord>, LookupStats)>,
    ) {
        let running = self.by_user.get(&(user, lookup));
        if let Some(pending) = running.and_then(|id| self.gets.get_mut(id)) {
            pending.replies.push(reply);
            return;
        }
        let id = kad.get_record(key_of(&user));
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        self.by_user.insert((user, lookup), id);
        self.gets.insert(
            id,
            PendingGet {
                user,
                lookup,
                best: None,
                first: None,
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

    /// Folds a query result (and kad's counts so far) into its lookup. The first record that
    /// validates answers every waiter at once and stops the query (`finish`): kad would
    /// otherwise go on until the relays closest to the key had all answered. A record that
    /// fails validation is counted and the query goes on. A query that ends with no valid
    /// record answers `None`.
    pub fn on_query(
        &mut self,
        kad: &mut kad::Behaviour<BoundedStore>,
        id: QueryId,
        result: QueryResult,
        stats: &QueryStats,
        last: bool,
    ) {
        let QueryResult::GetRecord(result) = result else {
            return;
        };
        let Some(pending) = self.gets.get_mut(&id) else {
            return;
        };
        let mut found = None;
        if let Ok(GetRecordOk::FoundRecord(peer_record)) = result {
            let record = peer_record.record;
            match HomeRecord::decode_verified(record.key.as_ref(), &record.value, now_ms()) {
                Ok(home) if home.user == pending.user => found = Some(home),
                Ok(_) | Err(_) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Requests sent and time spent so far: a record held locally comes before the query
        // has sent anything.
        let so_far = (stats.num_requests(), stats.duration().unwrap_or_default());
        if pending.lookup == Lookup::Whole {
            if let Some(home) = found.take() {
                pending.first.get_or_insert(so_far);
                pending.best = match pending.best.take() {
                    Some(best) if best.seq >= home.seq => Some(best),
                    _ => Some(home),
                };
            }
            if !last {
                return;
            }
        } else if found.is_none() && !last {
            return;
        } else if found.is_some() {
            pending.first = Some(so_far);
        }
        let Some(done) = self.gets.remove(&id) else {
            return;
        };
        self.by_user.remove(&(done.user, done.lookup));
        let found = found.or(done.best);
        if done.lookup == Lookup::FirstValid
            && found.is_some()
            && let Some(mut query) = kad.query_mut(&id)
        {
            query.finish();
        }
        let lookup = LookupStats {
            requests: stats.num_requests(),
            successes: stats.num_successes(),
            requests_to_first_record: done.first.map(|(requests, _)| requests),
            time_to_first_record: done.first.map(|(_, took)| took),
        };
        for reply in done.replies {
            let _ = reply.send((found.clone(), lookup));
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use libp2p::{
        Multiaddr, StreamProtocol,
        kad::{PeerRecord, store::MemoryStoreConfig},
    };
    use tidings_protocol::BoundedVec;
    use tokio::sync::oneshot::error::TryRecvError;

    use super::*;
    use crate::network::{KAD_PROTOCOL, record_store::RecordLimits};

    /// A Kademlia behaviour knowing one other relay, so a query has someone to ask.
    fn kad() -> kad::Behaviour<BoundedStore> {
        let local = PeerId::random();
        let limits = RecordLimits {
            max_bytes: 1 << 20,
            per_publisher: 100,
        };
        let store = BoundedStore::new(local, MemoryStoreConfig::default(), limits);
        let config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        let mut kad = kad::Behaviour::with_config(local, store, config);
        let address: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        kad.add_address(&PeerId::random(), address);
        kad
    }

    fn home_of(account: &SigningKey) -> HomeRecord {
        home_signed_at(account, now_ms())
    }

    /// A record signed at `at_ms` (a later one has a higher sequence).
    fn home_signed_at(account: &SigningKey, at_ms: u64) -> HomeRecord {
        let relay = PeerId::random().to_string();
        let addrs = BoundedVec::new(Vec::new()).unwrap();
        HomeRecord::sign(account, relay, addrs, at_ms, now_ms() + 3_600_000)
    }

    /// A record as another relay sent it in answer to the query.
    fn answer(home: &HomeRecord) -> QueryResult {
        let record = Record::new(key_of(&home.user), home.encode());
        QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(PeerRecord {
            peer: Some(PeerId::random()),
            record,
        })))
    }

    #[tokio::test]
    async fn the_first_valid_record_answers_at_once_and_stops_the_query_a_forged_one_does_not() {
        let mut kad = kad();
        let mut dht = Dht::new(Arc::new(DhtStats::default()));
        let account = SigningKey::from_bytes(&[7; 32]);
        let genuine = home_of(&account);
        let (first, mut first_answer) = oneshot::channel();
        let (joined, mut joined_answer) = oneshot::channel();
        dht.get_home(&mut kad, genuine.user, Lookup::FirstValid, first);
        dht.get_home(&mut kad, genuine.user, Lookup::FirstValid, joined);
        let id = *dht
            .by_user
            .get(&(genuine.user, Lookup::FirstValid))
            .unwrap();
        let stats = QueryStats::empty();

        // A forged record (its relay changed after signing): counted, the query goes on.
        let mut forged = genuine.clone();
        forged.relay = PeerId::random().to_string();
        dht.on_query(&mut kad, id, answer(&forged), &stats, false);
        assert_eq!(first_answer.try_recv().err(), Some(TryRecvError::Empty));
        assert!(kad.query(&id).is_some(), "a forged record ended the query");
        assert_eq!(dht.stats.rejected.load(Ordering::Relaxed), 1);

        // The genuine one answers both callers before the query would have ended, and the
        // query is finished there.
        dht.on_query(&mut kad, id, answer(&genuine), &stats, false);
        let (found, _) = first_answer.try_recv().unwrap();
        assert_eq!(found, Some(genuine.clone()));
        assert_eq!(joined_answer.try_recv().unwrap().0, Some(genuine.clone()));
        assert!(
            kad.query(&id).is_none(),
            "the query ran on after its answer"
        );
        assert!(dht.gets.is_empty() && dht.by_user.is_empty());

        // What kad reports for the finished query afterwards changes nothing.
        dht.on_query(&mut kad, id, answer(&genuine), &stats, true);
    }

    #[tokio::test]
    async fn a_query_that_ends_without_a_valid_record_answers_none() {
        let mut kad = kad();
        let mut dht = Dht::new(Arc::new(DhtStats::default()));
        let genuine = home_of(&SigningKey::from_bytes(&[8; 32]));
        let (reply, mut answer_rx) = oneshot::channel();
        dht.get_home(&mut kad, genuine.user, Lookup::FirstValid, reply);
        let id = *dht
            .by_user
            .get(&(genuine.user, Lookup::FirstValid))
            .unwrap();
        let mut forged = genuine.clone();
        forged.relay = PeerId::random().to_string();
        dht.on_query(&mut kad, id, answer(&forged), &QueryStats::empty(), true);
        assert_eq!(answer_rx.try_recv().unwrap().0, None);
        assert!(dht.gets.is_empty() && dht.by_user.is_empty());
    }

    #[tokio::test]
    async fn a_whole_lookup_runs_to_the_end_and_answers_the_newest_record_it_met() {
        let mut kad = kad();
        let mut dht = Dht::new(Arc::new(DhtStats::default()));
        let account = SigningKey::from_bytes(&[9; 32]);
        let stale = home_signed_at(&account, now_ms() - 60_000);
        let newest = home_of(&account);
        assert!(newest.seq > stale.seq);
        let (reply, mut answer_rx) = oneshot::channel();
        dht.get_home(&mut kad, newest.user, Lookup::Whole, reply);
        let id = *dht.by_user.get(&(newest.user, Lookup::Whole)).unwrap();
        let stats = QueryStats::empty();

        // Newest first, then a stale copy: no answer until the query ends, then the newest.
        dht.on_query(&mut kad, id, answer(&newest), &stats, false);
        dht.on_query(&mut kad, id, answer(&stale), &stats, false);
        assert_eq!(answer_rx.try_recv().err(), Some(TryRecvError::Empty));
        assert!(
            kad.query(&id).is_some(),
            "a whole lookup was finished early"
        );
        dht.on_query(
            &mut kad,
            id,
            QueryResult::GetRecord(Ok(GetRecordOk::FinishedWithNoAdditionalRecord {
                cache_candidates: Default::default(),
            })),
            &stats,
            true,
        );
        let (found, lookup) = answer_rx.try_recv().unwrap();
        assert_eq!(found, Some(newest));
        assert!(lookup.requests_to_first_record.is_some());
        assert!(dht.gets.is_empty() && dht.by_user.is_empty());
    }
}
