//! One-time key draining (issue 12, item 6): the rogue relay asks Bob's relay for 256 of
//! Bob's bundles in one `ClaimBundles`. Judged by what Bob's relay tells Bob's own device
//! about the one-time keys it holds for him (the `Registered` answer), before and after.

use tidings_protocol::{federation::FederationResponse, limits::MAX_BATCH_ENVELOPES};

use super::{Findings, Verdict, craft, findings, raw::RawClient, rogue, world::World};

const DRAIN: &str = "claim_draining";

/// Runs the attack against Bob.
pub async fn drain(world: &World) -> Findings {
    findings(&[DRAIN], attempt(world).await)
}

async fn attempt(world: &World) -> anyhow::Result<Findings> {
    let bob = world.bob();
    let home = &world.relays[world.home_of(1)];
    // Bob's device asks its relay (registration is idempotent and reports the count).
    let keys = world.honest_keys(1)?;
    let mut as_bob = RawClient::connect(keys.device_key(), &home.addr).await?;
    let (before, _) = as_bob.register(keys.cert().clone()).await?;

    // The rogue asks for a user of its own, so the requester check passes and only the
    // limits stand in the way.
    let requester = craft::fresh_key();
    world.rogue.adopt(&requester).await?;
    let mut stream = world.rogue.open(home.peer).await?;
    let asked = vec![bob.address(); MAX_BATCH_ENVELOPES];
    let answer = stream
        .request(rogue::claim_bundles(asked, craft::user_of(&requester))?)
        .await?;
    let (one_time, fallback, refused) = match &answer {
        Ok(FederationResponse::Bundles { bundles }) => bundles.iter().fold(
            (0usize, 0usize, 0usize),
            |(one_time, fallback, refused), bundle| match bundle {
                Ok(bundle) if bundle.prekey.fallback => (one_time, fallback + 1, refused),
                Ok(_) => (one_time + 1, fallback, refused),
                Err(_) => (one_time, fallback, refused + 1),
            },
        ),
        _ => (0, 0, MAX_BATCH_ENVELOPES),
    };
    let (after, _) = as_bob.register(keys.cert().clone()).await?;
    Ok(vec![(
        DRAIN,
        Verdict::new(
            before > 0 && after == 0,
            format!(
                "one request from a stranger relay for {MAX_BATCH_ENVELOPES} of Bob's bundles got {one_time} one-time keys, {fallback} fallback, {refused} refused; Bob's relay held {before} one-time keys for him before, {after} after"
            ),
        ),
    )])
}
