//! Group attacks (issue 12, item 2): Mallory, removed at version 2, forges a version 4 that
//! makes her admin and drops Alice, and has the rogue relay forward it "as of version 1"
//! (when she was a member), or posts to the group that way; and a group id squatted at a
//! relay that has not seen the group.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use tidings_keys::{GroupOutbound, OlmAccount};
use tidings_protocol::{EnvelopeId, Kind, Recipient, UserId, content::Payload, group::Role};

use super::{
    Findings, Verdict, craft, findings,
    raw::RawClient,
    rogue,
    world::{World, eventually, readable},
};
use crate::scenario::users;

const TAKEOVER: &str = "group_takeover";
const SQUAT: &str = "group_id_squatting";
const REMOVED_POSTS: &str = "removed_member_posts";

/// What Mallory posts after her removal.
const REMOVED_TEXT: &str = "still here, and still reading along";

/// How long honest clients get to adopt the forged version (when a relay took it).
const OBSERVE: Duration = Duration::from_secs(6);

/// How long a member added later gets to learn the squatted group.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// Mallory's forged version: judged by whether any honest member's client adopted it.
pub async fn takeover(world: &World) -> Findings {
    findings(&[TAKEOVER], takeover_attempt(world).await)
}

async fn takeover_attempt(world: &World) -> anyhow::Result<Findings> {
    let mallory = world.mallory_keys()?;
    let known = world
        .mallory
        .store()
        .group(&world.group)?
        .context("Mallory never saw her removal")?;
    let mut members = vec![(mallory.user_id(), Role::Admin)];
    members.extend(
        world.honest[1..]
            .iter()
            .map(|client| (client.user_id(), Role::Member)),
    );
    let version = known.descriptor.version + 2;
    let forged = craft::descriptor(
        mallory.account_key(),
        world.group,
        version,
        Some(known.hash()),
        &known.descriptor.name,
        members,
    )?;
    let envelope = craft::group_change(mallory.device_key(), mallory.address(), &forged);
    // To every member's relay, for the members homed there, fanned out "by version 1".
    let mut by_relay: BTreeMap<usize, Vec<UserId>> = BTreeMap::new();
    for (index, client) in world.honest.iter().enumerate() {
        by_relay
            .entry(world.home_of(index))
            .or_default()
            .push(client.user_id());
    }
    // Mallory moves her home to the rogue (her account signs that record), so its forwards
    // pass the origin check and only the chain check stands in the way.
    world.rogue.adopt(mallory.account_key()).await?;
    let mut said = Vec::new();
    let mut taken = false;
    for (relay, recipients) in by_relay {
        let mut stream = world.rogue.open(world.relays[relay].peer).await?;
        let item = rogue::forward_item(envelope.clone(), recipients, 1)?;
        let certs = vec![mallory.cert().clone()];
        let answer = stream.request(rogue::forward(vec![item], certs)?).await?;
        let (stored, text) = rogue::judge_forward(answer, &format!("relay {}", relay + 1));
        taken |= stored;
        said.push(text);
    }
    let adopted = || -> anyhow::Result<usize> {
        let mut count = 0;
        for client in &world.honest {
            if client.store().group(&world.group)?.is_some_and(|held| {
                held.descriptor.version == version && held.descriptor.author == mallory.user_id()
            }) {
                count += 1;
            }
        }
        Ok(count)
    };
    let patience = if taken { OBSERVE } else { Duration::ZERO };
    eventually(patience, || Ok(adopted()? == world.honest.len())).await?;
    let adopted = adopted()?;
    Ok(vec![(
        TAKEOVER,
        Verdict::new(
            adopted > 0,
            format!(
                "Mallory (removed at v2) forged v{version} naming herself admin without Alice; {}; {adopted} of {} honest members adopted it",
                said.join("; "),
                world.honest.len()
            ),
        ),
    )])
}

/// Squatting: Alice makes a group with members on two relays; before a member homed on the
/// third joins, Mallory plants her own first version of that group id there. Judged by
/// whether the new member learns Alice's group.
pub async fn squat(world: &World) -> Findings {
    findings(&[SQUAT], squat_attempt(world).await)
}

async fn squat_attempt(world: &World) -> anyhow::Result<Findings> {
    let victim = world.relays.len() - 1;
    let alice = world.alice();
    let mut session = users::connect(alice).await;
    let group = session
        .create_group("squat-probe", &[&users::name(1)])
        .await?;

    let mallory = world.mallory_keys()?;
    let planted = craft::squatting_genesis(mallory.account_key(), group, "mallory's now", &[])?;
    let mut stream = world.rogue.open(world.relays[victim].peer).await?;
    let answer = stream.request(rogue::descriptors(vec![planted])?).await?;
    let planted_said = match answer {
        Ok(_) => "took Mallory's first version".to_string(),
        Err(refusal) => format!("refused Mallory's first version ({})", refusal.code),
    };

    let joiner = world.probe_user("squat-joiner", victim).await?;
    world.introduce(alice, "squat-joiner", &joiner)?;
    session.add_to_group(group, &["squat-joiner"]).await?;
    session.close().await;
    let joined = async {
        users::wait_for_group_version(&joiner, group, 2, JOIN_PATIENCE).await?;
        let held = joiner.store().group(&group)?.context("no group")?;
        anyhow::Ok(held.descriptor.author == alice.user_id())
    };
    let learned = tokio::time::timeout(JOIN_PATIENCE + Duration::from_secs(3), joined)
        .await
        .map(|joined| joined.unwrap_or(false))
        .unwrap_or(false);
    Ok(vec![(
        SQUAT,
        Verdict::new(
            !learned,
            format!(
                "relay {} (no member yet) {planted_said} for Alice's group {}; the member Alice added there {} her group",
                victim + 1,
                short_group(&group),
                if learned { "learned" } else { "never learned" }
            ),
        ),
    )])
}

fn short_group(group: &tidings_protocol::GroupId) -> String {
    group.to_string()[..8].to_string()
}

/// Mallory, removed at version 2, shares a Megolm key of hers with Bob (a direct message
/// from her own device, which any user may send) and has the rogue relay forward a group
/// message on it "by version 1". Judged by whether Bob's group history shows it.
pub async fn removed_member_posts(world: &World) -> Findings {
    findings(&[REMOVED_POSTS], removed_attempt(world).await)
}

async fn removed_attempt(world: &World) -> anyhow::Result<Findings> {
    let mallory = world.mallory_keys()?;
    let me = mallory.address();
    let bob = world.bob();
    let bob_addr = bob.address();
    let mut client = RawClient::connect(mallory.device_key(), &world.relays[0].addr).await?;
    let olm = OlmAccount::new();
    let bundle = client.claim(bob_addr).await?;
    let mut session = olm.create_outbound_session(&bob.user_id(), &bundle)?;
    let mut megolm = GroupOutbound::new();
    let share = Payload::GroupKey {
        group: world.group,
        session_key: megolm.session_key(),
    };
    let share_id = EnvelopeId::random();
    let keys = olm.sender_keys(&mallory);
    let body = craft::olm_body(&mut session, &keys, share_id, me, bob_addr, share, false)?;
    let share = craft::envelope(
        mallory.device_key(),
        share_id,
        me,
        Recipient::Direct(bob_addr),
        Kind::KeyShare,
        body.encode(),
    );
    let shared = match client.send(vec![share]).await? {
        Ok(outcomes) => outcomes.first().is_some_and(|outcome| outcome.is_stored()),
        Err(_) => false,
    };
    let message_id = EnvelopeId::random();
    let body = craft::megolm_text(&mut megolm, message_id, me, world.group, REMOVED_TEXT);
    let message = craft::envelope(
        mallory.device_key(),
        message_id,
        me,
        Recipient::Group(world.group),
        Kind::Message,
        body.encode(),
    );
    let mut stream = world
        .rogue
        .open(world.relays[world.home_of(1)].peer)
        .await?;
    world.rogue.adopt(mallory.account_key()).await?;
    let item = rogue::forward_item(message, vec![bob.user_id()], 1)?;
    let certs = vec![mallory.cert().clone()];
    let answer = stream.request(rogue::forward(vec![item], certs)?).await?;
    let (taken, relay_said) = rogue::judge_forward(answer, "Bob's relay");
    let patience = if taken { OBSERVE } else { Duration::ZERO };
    // Decided once Bob's client recorded the message at all (shown, or as not openable).
    eventually(patience, || Ok(bob.store().message(&message_id)?.is_some())).await?;
    let shown = readable(bob, &message_id)?.is_some_and(|record| record.text == REMOVED_TEXT);
    Ok(vec![(
        REMOVED_POSTS,
        Verdict::new(
            shown,
            format!(
                "her relay {} her key share to Bob; for her group message \"by version 1\" {relay_said}; Bob's client {} it",
                if shared { "took" } else { "refused" },
                if shown { "showed" } else { "did not show" }
            ),
        ),
    )])
}
