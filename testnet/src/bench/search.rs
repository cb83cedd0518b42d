//! `bench search`: one client's history filled with messages through the store's receive
//! path (real Olm envelopes from several senders), then its search index timed: a full
//! rebuild, its size, and a fixed query mix, each result checked against a plain scan.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;
use tidings_client::{
    Conversation, Direction, MessageRecord,
    search::tokens,
    store::{ClientStore, SearchQuery, Sender, outbox::Finished},
};
use tidings_keys::Identity;
use tidings_protocol::{DeviceEntry, DeviceList, KeyBundle, UserId, now_ms};

use crate::report::{Outcome, Percentiles};

/// Most messages a run loads.
const MAX_MESSAGES: usize = 1_000_000;
/// Messages sealed and received per transaction (a busy sync brings batches like it).
const BATCH: usize = 500;
/// Words of the synthetic vocabulary.
const VOCABULARY: usize = 20_000;
/// Results asked of each query (what `tidings search` shows by default).
const LIMIT: usize = 20;
/// Queries whose results are checked against a scan of the whole history.
const CHECKED: usize = 100;
/// The p99 per query the index should stay under (release build).
const TARGET_P99_MS: f64 = 20.0;

/// Size of a run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Messages loaded into the receiving client's history.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Senders (1:1 conversations) they come from.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Queries timed, from a fixed mix (common, rare, two and three words, in a conversation,
    /// from a sender, a word nowhere).
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Seed of the texts and queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    /// Bench name.
    pub bench: &'static str,
    /// Messages in the history.
    pub messages: usize,
    /// Conversations they are in.
    pub senders: usize,
    /// Loading them through the receive path (Olm decryption, storing, indexing in the same
    /// transaction), seconds.
    pub receive_s: f64,
    /// Rebuilding the whole index from the stored history, seconds.
    pub index_build_s: f64,
    /// Bytes the index takes in the client's redb file.
    pub index_bytes: u64,
    /// Bytes of the whole client file.
    pub store_bytes: u64,
    /// Queries timed.
    pub queries: usize,
    /// Results they returned in all.
    pub results: usize,
    /// Time per query (opening a read transaction to decoded records), ms.
    pub query_ms: Percentiles,
    /// The p99 aimed at (release build).
    pub target_p99_ms: f64,
    /// Checked queries whose results differ from a scan of the history.
    pub mismatches: usize,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
    /// Seed of the texts and queries.
    pub seed: u64,
}

impl Outcome for SearchReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "search: {} messages in {} conversations, loaded through the receive path in {:.1} s",
            self.messages, self.senders, self.receive_s
        );
        println!(
            "  index: rebuilt in {:.2} s, {:.1} MiB (store file {:.1} MiB)",
            self.index_build_s,
            self.index_bytes as f64 / 1_048_576.0,
            self.store_bytes as f64 / 1_048_576.0
        );
        println!(
            "  {} queries (limit {LIMIT}), {} results: {} (target p99 <= {} ms, release build)",
            self.queries, self.results, self.query_ms, self.target_p99_ms
        );
        println!(
            "  {} of {CHECKED} checked queries differ from a scan; wall {:.1} s; seed {}",
            self.mismatches, self.wall_s, self.seed
        );
        println!("  {}", if self.mismatches == 0 { "OK" } else { "FAILED" });
        Ok(())
    }

    fn failure(&self) -> Option<&'static str> {
        (self.mismatches > 0).then_some("a search returned other messages than a scan finds")
    }
}

/// Runs the bench in `work` (store work is blocking: off the runtime).
pub async fn run(work: &Path, params: Params) -> anyhow::Result<SearchReport> {
    ensure!(
        (1..=MAX_MESSAGES).contains(&params.messages),
        "1 to {MAX_MESSAGES} messages"
    );
    ensure!((1..=64).contains(&params.senders), "1 to 64 senders");
    ensure!(
        (1..=100_000).contains(&params.queries),
        "1 to 100,000 queries"
    );
    let work = work.to_path_buf();
    tokio::task::spawn_blocking(move || measure(&work, params)).await?
}

/// A device that is a client store and its identity.
struct Device {
    identity: Identity,
    store: ClientStore,
}

impl Device {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let identity = Identity::generate();
        Ok(Self {
            store: ClientStore::open(dir, identity.store_key())?,
            identity,
        })
    }

    /// Makes this store hold `other`'s device list (as fetching it would).
    fn knows(&self, other: &Identity) -> anyhow::Result<()> {
        let entry = DeviceEntry {
            device: other.device_id(),
            name: "phone".into(),
            added_at_ms: now_ms(),
        };
        let list = DeviceList::new(other.user_id(), 1, vec![entry])?;
        let signed = other.sign_device_list(list)?;
        self.store
            .accept_device_list(&other.user_id(), signed)?
            .context("device list refused")?;
        Ok(())
    }
}

fn measure(work: &Path, params: Params) -> anyhow::Result<SearchReport> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(params.seed);
    let vocabulary: Vec<String> = (0..VOCABULARY).map(|i| word(&mut rng, i)).collect();
    let receiver = Device::new(&work.join("receiver"))?;
    let upload = receiver
        .store
        .keys_to_publish(&receiver.identity, params.senders)?
        .context("no keys to publish")?;
    let mut senders = Vec::with_capacity(params.senders);
    for (index, prekey) in upload.one_time_keys.iter().enumerate() {
        let sender = Device::new(&work.join(format!("sender-{index}")))?;
        let bundle = KeyBundle {
            cert: receiver.identity.cert().clone(),
            identity: upload.identity.clone().context("no identity key")?,
            prekey: prekey.clone(),
        };
        sender
            .store
            .install_outbound(&sender.identity, &receiver.identity.address(), &bundle)?;
        receiver.knows(&sender.identity)?;
        senders.push(sender);
    }

    let mut receive = Duration::ZERO;
    let mut loaded = 0;
    while loaded < params.messages {
        let sender = &senders[rng.random_range(0..senders.len())];
        let count = BATCH.min(params.messages - loaded);
        let texts = (0..count).map(|_| text(&mut rng, &vocabulary)).collect();
        let to = Conversation::Direct(receiver.identity.user_id());
        sender
            .store
            .queue_texts(sender.identity.user_id(), to, texts)?;
        let pending = sender.store.pending(count)?;
        let entries: Vec<_> = pending
            .iter()
            .map(|(seq, _)| (*seq, vec![receiver.identity.address()]))
            .collect();
        let sealed = sender.store.seal_many(&sender.identity, &entries)?;
        let finished = pending
            .iter()
            .map(|(seq, entry)| (*seq, entry.id, Finished::Sent))
            .collect();
        sender.store.finish_many(finished)?;
        let mut envelopes = Vec::with_capacity(count);
        for copy in sealed.into_iter().flatten() {
            envelopes.push((copy.envelope.open()?, copy.envelope));
        }
        let at = Instant::now();
        receiver
            .store
            .receive(&receiver.identity, &envelopes, &[])?;
        receive += at.elapsed();
        loaded += count;
    }
    tracing::info!(elapsed = ?started.elapsed(), "history loaded");

    let at = Instant::now();
    receiver.store.rebuild_search_index()?;
    let index_build_s = at.elapsed().as_secs_f64();
    let index_bytes = receiver.store.search_index_size()?;

    let users: Vec<UserId> = senders.iter().map(|s| s.identity.user_id()).collect();
    let history = History::load(&receiver.store, &users)?;
    let queries: Vec<SearchQuery> = (0..params.queries)
        .map(|i| query(i, &mut rng, &vocabulary, &history, &users))
        .collect();
    let mut samples = Vec::with_capacity(queries.len());
    let mut results = 0;
    let mut mismatches = 0;
    for (i, query) in queries.iter().enumerate() {
        let at = Instant::now();
        let found = receiver.store.search(query)?;
        samples.push(at.elapsed().as_secs_f64() * 1000.0);
        results += found.records.len();
        if i < CHECKED && !history.agrees(query, &found.records) {
            tracing::warn!(?query, "results differ from a scan");
            mismatches += 1;
        }
    }
    let store_bytes = std::fs::metadata(
        work.join("receiver")
            .join(tidings_client::store::STORE_FILE),
    )?
    .len();
    Ok(SearchReport {
        bench: "search",
        messages: params.messages,
        senders: params.senders,
        receive_s: receive.as_secs_f64(),
        index_build_s,
        index_bytes,
        store_bytes,
        queries: queries.len(),
        results,
        query_ms: Percentiles::of(samples),
        target_p99_ms: TARGET_P99_MS,
        mismatches,
        wall_s: started.elapsed().as_secs_f64(),
        seed: params.seed,
    })
}

/// The `index`-th word of the vocabulary: 3 to 9 letters.
fn word(rng: &mut StdRng, index: usize) -> String {
    (0..3 + index % 7)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// A message of 3 to 24 words, common words far more often than rare ones (roughly Zipf).
fn text(rng: &mut StdRng, vocabulary: &[String]) -> String {
    let words: Vec<&str> = (0..rng.random_range(3..25))
        .map(|_| {
            let skew: f64 = rng.random();
            let rank = (skew * skew * skew * vocabulary.len() as f64) as usize;
            vocabulary[rank.min(vocabulary.len() - 1)].as_str()
        })
        .collect();
    words.join(" ")
}

/// The `i`-th query of the fixed mix.
fn query(
    i: usize,
    rng: &mut StdRng,
    vocabulary: &[String],
    history: &History,
    users: &[UserId],
) -> SearchQuery {
    let common = || vocabulary[i % 20].clone();
    let of_a_message = |rng: &mut StdRng, count: usize| {
        let record = &history.records[rng.random_range(0..history.records.len())];
        let words = tokens::words(&record.text);
        let start = rng.random_range(0..words.len().max(1));
        words
            .iter()
            .cycle()
            .skip(start)
            .take(count.min(words.len()))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let plain = |words: String| SearchQuery {
        words,
        within: None,
        from: None,
        limit: LIMIT,
    };
    match i % 7 {
        0 => plain(common()),
        1 => plain(vocabulary[rng.random_range(VOCABULARY / 4..VOCABULARY)].clone()),
        2 => plain(of_a_message(rng, 2)),
        3 => plain(of_a_message(rng, 3)),
        4 => SearchQuery {
            within: Some(Conversation::Direct(users[i % users.len()])),
            ..plain(common())
        },
        5 => SearchQuery {
            from: Some(Sender::User(users[i % users.len()])),
            ..plain(vocabulary[i % 200].clone())
        },
        _ => plain("zzzzzzzzzz".into()),
    }
}

/// The whole history in memory, to check results against a scan.
struct History {
    records: Vec<MessageRecord>,
    words: HashMap<tidings_protocol::EnvelopeId, Vec<String>>,
}

impl History {
    fn load(store: &ClientStore, users: &[UserId]) -> anyhow::Result<Self> {
        let mut records = Vec::new();
        for user in users {
            records.extend(store.history(&Conversation::Direct(*user))?);
        }
        let words = records
            .iter()
            .map(|record| (record.id, tokens::words(&record.text)))
            .collect();
        Ok(Self { records, words })
    }

    /// Whether `found` is what a scan gives: as many as match (up to the limit), each
    /// matching, newest first.
    fn agrees(&self, query: &SearchQuery, found: &[MessageRecord]) -> bool {
        let Some(wanted) = tokens::query_words(&query.words) else {
            return false;
        };
        let matches = |record: &MessageRecord| {
            let holds = |words: &Vec<String>| wanted.iter().all(|w| words.binary_search(w).is_ok());
            self.words.get(&record.id).is_some_and(holds)
                && query.within.is_none_or(|c| c == record.conversation())
                && query.from.is_none_or(|from| match from {
                    Sender::Me => record.direction == Direction::Outgoing,
                    Sender::User(user) => {
                        record.direction == Direction::Incoming && record.peer == user
                    }
                })
        };
        let total = self.records.iter().filter(|r| matches(r)).count();
        let rank = |r: &MessageRecord| r.sent_at_ms.min(r.stored_at_ms);
        found.len() == total.min(query.limit)
            && found
                .iter()
                .all(|r| self.words.contains_key(&r.id) && matches(r))
            && found
                .windows(2)
                .all(|pair| rank(&pair[0]) >= rank(&pair[1]))
    }
}
