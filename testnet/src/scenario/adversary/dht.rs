//! DHT abuse (issue 12, items 7 and 8): one cheap `Ephemeral` naming hundreds of made-up
//! recipients makes a relay run a Kademlia lookup for each (twice: failures are not cached),
//! counted by the relay's own libp2p metrics;
//! and the rogue relay stores home records in a relay's DHT store with an expiry a century
//! out, and hundreds of records from one publishing peer for a relay that never vouched for
//! them, and a record moving Alice's home to the rogue that Alice never signed. Records are
//! judged by asking the victim relay for them back over Kademlia.

use std::time::{Duration, Instant};

use futures::future::join_all;
use tidings_protocol::{Address, HomeRecord, Recipient, home::HOME_RECORD_LIFETIME_MS, now_ms};

use super::{Findings, Verdict, craft, findings, rogue, world::World};

const LOOKUPS: &str = "lookup_amplification";
const LONG_EXPIRY: &str = "dht_long_expiry";
const PER_PEER: &str = "dht_records_per_peer";
const HIJACK: &str = "dht_home_hijack";

/// Made-up recipients of the amplifying typing notice.
const LOOKUP_RECIPIENTS: usize = 256;

/// Most DHT lookups one request may cause (the bound the attack is judged by).
pub const LOOKUP_BOUND: f64 = 128.0;

/// Most lookups the same request may cause again right after (misses must be remembered).
pub const REPEAT_BOUND: f64 = LOOKUP_BOUND / 4.0;

/// How long the victim may take over the amplifying request.
const LOOKUP_PATIENCE: Duration = Duration::from_secs(60);

/// libp2p's counter of Kademlia record lookups that found nothing: each made-up recipient
/// looked up adds one (honest lookups of existing users do not).
const FAILED_LOOKUPS: &str = "libp2p_kad_query_result_get_record_error";

/// Records the rogue publishes from its one peer id.
const RECORDS: usize = 200;

/// Most records from one publishing peer, for relays that did not vouch for them, that a
/// relay may hold (the bound the attack is judged by).
pub const RECORDS_BOUND: usize = 64;

/// Longest remaining lifetime a stored home record may have: the normal lifetime and a day.
const LIFETIME_BOUND: Duration = Duration::from_millis(HOME_RECORD_LIFETIME_MS + 24 * 3600 * 1000);

/// Records put or looked up at once.
const CHUNK: usize = 25;

/// Judged by the victim relay's own Kademlia query counter around the request.
pub async fn lookups(world: &World) -> Findings {
    findings(&[LOOKUPS], lookups_attempt(world).await)
}

async fn lookups_attempt(world: &World) -> anyhow::Result<Findings> {
    let victim = &world.relays[0];
    let recipients = craft::made_up_users(LOOKUP_RECIPIENTS);
    // The typist is the rogue's own user, so only the recipients cost lookups.
    let device = craft::fresh_key();
    let account = craft::fresh_key();
    world.rogue.adopt(&account).await?;
    let sender = Address {
        user: craft::user_of(&account),
        device: craft::device_of(&device),
    };
    let cert = tidings_protocol::DeviceCert::issue(&account, sender.device, now_ms());
    let mut stream = world.rogue.open(victim.peer).await?;
    let mut counts = Vec::new();
    let mut took = Vec::new();
    for _ in 0..2 {
        let notice = craft::typing(&device, sender, Recipient::Direct(sender));
        let before = victim.metric(FAILED_LOOKUPS, "").await?;
        let started = Instant::now();
        let answer = stream
            .request_within(
                rogue::ephemeral(notice, recipients.clone(), cert.clone())?,
                LOOKUP_PATIENCE,
            )
            .await;
        took.push(started.elapsed());
        let after = victim.metric(FAILED_LOOKUPS, "").await?;
        counts.push(after - before);
        if let Err(error) = answer {
            tracing::info!(%error, "the amplifying request got no answer");
        }
    }
    Ok(vec![(
        LOOKUPS,
        Verdict::new(
            counts[0] > LOOKUP_BOUND || counts[1] > REPEAT_BOUND,
            format!(
                "one Ephemeral naming {LOOKUP_RECIPIENTS} made-up users made relay 1 run {} DHT lookups that found nothing in {:.1} s (bound {LOOKUP_BOUND}); the same request again: {} more in {:.1} s (bound {REPEAT_BOUND})",
                counts[0],
                took[0].as_secs_f64(),
                counts[1],
                took[1].as_secs_f64()
            ),
        ),
    )])
}

/// Judged by asking the victim for the records back.
pub async fn records(world: &World) -> Findings {
    findings(
        &[LONG_EXPIRY, PER_PEER, HIJACK],
        records_attempt(world).await,
    )
}

async fn records_attempt(world: &World) -> anyhow::Result<Findings> {
    let victim = world.relays[0].peer;
    // Records naming another relay, which never published them.
    let named = world.relays[1].peer;
    let addrs = vec![world.relays[1].addr.to_string()];
    let century = now_ms() + 100 * 365 * 24 * 3600 * 1000;
    let long = craft::home_record(&craft::fresh_key(), named, addrs.clone(), Some(century))?;
    let long_put = world
        .rogue
        .put(craft::kad_record(&long), vec![victim])
        .await?;
    let many: Vec<HomeRecord> = (0..RECORDS)
        .map(|_| craft::home_record(&craft::fresh_key(), named, addrs.clone(), None))
        .collect::<anyhow::Result<_>>()?;
    // Alice's home "moved" to the rogue, with a record she never signed.
    let alice = world.alice().user_id();
    let hijack = craft::hijacked_home_record(
        alice,
        &craft::fresh_key(),
        world.rogue.peer_id,
        vec![world.rogue.bare_addr()],
    )?;
    let hijack_put = world
        .rogue
        .put(craft::kad_record(&hijack), vec![victim])
        .await?;
    let mut puts = 0;
    for chunk in many.chunks(CHUNK) {
        let sent = join_all(
            chunk
                .iter()
                .map(|home| world.rogue.put(craft::kad_record(home), vec![victim])),
        )
        .await;
        puts += sent
            .into_iter()
            .filter(|put| matches!(put, Ok(true)))
            .count();
    }

    let held_long = world
        .rogue
        .get(craft::kad_record(&long).key)
        .await?
        .into_iter()
        .find(|found| found.peer == Some(victim));
    let long_verdict = match &held_long {
        None => Verdict::new(
            false,
            format!(
                "relay 1 does not hold a home record expiring in 100 years (put answered {long_put})"
            ),
        ),
        Some(found) => {
            let left = found
                .record
                .expires
                .map(|at| at.saturating_duration_since(std::time::Instant::now()));
            Verdict::new(
                left.is_none_or(|left| left > LIFETIME_BOUND),
                format!(
                    "relay 1 holds a home record expiring in 100 years and gives it out with {} left (bound {} days)",
                    match left {
                        Some(left) => format!("{} days", left.as_secs() / 86_400),
                        None => "no expiry".into(),
                    },
                    LIFETIME_BOUND.as_secs() / 86_400
                ),
            )
        }
    };
    let mut held = 0;
    for chunk in many.chunks(CHUNK) {
        let found = join_all(
            chunk
                .iter()
                .map(|home| world.rogue.get(craft::kad_record(home).key)),
        )
        .await;
        held += found
            .into_iter()
            .filter(|found| {
                found
                    .as_ref()
                    .is_ok_and(|copies| copies.iter().any(|copy| copy.peer == Some(victim)))
            })
            .count();
    }
    let rogue = world.rogue.peer_id.to_string();
    let hijacked = world
        .rogue
        .get(craft::kad_record(&hijack).key)
        .await?
        .into_iter()
        .filter(|found| found.peer == Some(victim))
        .any(|found| {
            tidings_protocol::codec::decode::<HomeRecord>(
                &found.record.value,
                tidings_protocol::limits::MAX_HOME_RECORD_BYTES,
            )
            .is_ok_and(|home| home.relay == rogue)
        });
    Ok(vec![
        (
            HIJACK,
            Verdict::new(
                hijacked,
                format!(
                    "the rogue put a home record for Alice naming itself, signed by another key (put answered {hijack_put}); relay 1 {} it back",
                    if hijacked { "gives" } else { "does not give" }
                ),
            ),
        ),
        (LONG_EXPIRY, long_verdict),
        (
            PER_PEER,
            Verdict::new(
                held > RECORDS_BOUND,
                format!(
                    "one peer put {RECORDS} home records naming relay 2 (which never vouched for them) to relay 1 ({puts} puts answered); relay 1 gives {held} of them back (bound {RECORDS_BOUND})"
                ),
            ),
        ),
    ])
}
