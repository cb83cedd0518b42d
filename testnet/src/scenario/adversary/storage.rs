//! Storage attacks (issue 12, item 4): descriptors of groups nobody local is in, stored for
//! a stranger; one account's mailbox holding more bytes than a bound; and the outbox of a
//! relay filled by one account's group of made-up members, so honest cross-relay sends are
//! refused.

use std::time::Duration;

use anyhow::Context;
use tidings_client::MessageStatus;
use tidings_protocol::{
    EnvelopeId, GroupId, Kind, Recipient,
    client::SendOutcome,
    federation::FederationResponse,
    limits::{MAX_ENVELOPE_BYTES, MAX_GROUP_MEMBERS},
};

use super::{
    Findings, OUTBOX_MAX, Verdict, craft, findings,
    raw::RawUser,
    rogue,
    world::{World, eventually},
};
use crate::scenario::users;

const DESCRIPTORS: &str = "descriptor_flood";
const MAILBOX: &str = "mailbox_bytes";
const OUTBOX: &str = "outbox_flood";

/// `Descriptors` requests the stranger sends, each with as many first versions as fit.
const DESCRIPTOR_REQUESTS: usize = 4;

/// First versions per request (the protocol's most).
const DESCRIPTORS_PER_REQUEST: usize = tidings_protocol::federation::MAX_DESCRIPTORS_PER_REQUEST;

/// Made-up members per flooding descriptor (about 40 KiB each).
const FLOOD_MEMBERS: usize = MAX_GROUP_MEMBERS - 1;

/// Bytes one account may hold in its own mailbox (the bound the attack is judged by).
pub const MAILBOX_BOUND: usize = 16 * 1024 * 1024;

/// Bytes the account tries to park there.
const MAILBOX_ATTACK: usize = MAILBOX_BOUND + MAILBOX_BOUND / 2;

/// Body bytes of one parked envelope (it must stay under the envelope limit).
const PARKED_BODY: usize = MAX_ENVELOPE_BYTES - 512;

/// Envelopes per `Send` while parking (under the frame limit).
const PARK_BATCH: usize = 8;

/// Group messages the outbox attacker sends after the group's first version.
const OUTBOX_MESSAGES: usize = (OUTBOX_MAX as usize).div_ceil(MAX_GROUP_MEMBERS - 1) + 2;

/// How long an honest user's cross-relay message may wait to be accepted.
const PROBE_PATIENCE: Duration = Duration::from_secs(20);

/// A stranger sends `Descriptors` of made-up groups; judged by whether the relay then holds
/// them (it has no member of any), and how much its database grew.
pub async fn descriptors(world: &World) -> Findings {
    findings(&[DESCRIPTORS], descriptors_attempt(world).await)
}

async fn descriptors_attempt(world: &World) -> anyhow::Result<Findings> {
    let victim = &world.relays[0];
    let before = victim.store_bytes();
    let stranger = craft::fresh_key();
    let members = craft::made_up_users(FLOOD_MEMBERS);
    let mut stream = world.rogue.open(victim.peer).await?;
    let mut groups: Vec<GroupId> = Vec::new();
    let mut refused = 0;
    for _ in 0..DESCRIPTOR_REQUESTS {
        let mut versions = Vec::with_capacity(DESCRIPTORS_PER_REQUEST);
        for _ in 0..DESCRIPTORS_PER_REQUEST {
            let genesis = craft::genesis(&stranger, "flood", &members)?;
            groups.push(genesis.descriptor.group);
            versions.push(genesis);
        }
        if stream
            .request(rogue::descriptors(versions)?)
            .await?
            .is_err()
        {
            refused += 1;
        }
    }
    let mut held = 0;
    for group in &groups {
        if let Ok(FederationResponse::GroupVersion(version)) =
            stream.request(rogue::group_version(*group)).await?
            && version > 0
        {
            held += 1;
        }
    }
    let grew = victim.store_bytes().saturating_sub(before);
    Ok(vec![(
        DESCRIPTORS,
        Verdict::new(
            held > 0,
            format!(
                "a stranger sent {} first versions of made-up groups (~40 KiB each) in {DESCRIPTOR_REQUESTS} requests ({refused} refused); relay 1, with no member in any, holds {held}; its database grew {} KiB meanwhile",
                groups.len(),
                grew / 1024
            ),
        ),
    )])
}

/// One account parks large envelopes in its own mailbox and never takes them.
pub async fn mailbox(world: &World) -> Findings {
    findings(&[MAILBOX], mailbox_attempt(world).await)
}

async fn mailbox_attempt(world: &World) -> anyhow::Result<Findings> {
    let mut hoarder = RawUser::register(&world.relays[0].addr).await?;
    let me = hoarder.identity.address();
    let body = vec![0x5a; PARKED_BODY];
    let mut accepted = 0usize;
    let mut refusal = None;
    'parking: while accepted * PARKED_BODY < MAILBOX_ATTACK {
        let batch = (0..PARK_BATCH)
            .map(|_| {
                craft::envelope(
                    hoarder.identity.device_key(),
                    EnvelopeId::random(),
                    me,
                    Recipient::Direct(me),
                    Kind::Message,
                    body.clone(),
                )
            })
            .collect();
        match hoarder.client.send(batch).await? {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome {
                        SendOutcome::Accepted | SendOutcome::Duplicate => accepted += 1,
                        SendOutcome::Rejected(answer) => {
                            refusal = Some(answer.code);
                            break 'parking;
                        }
                    }
                }
            }
            Err(answer) => {
                refusal = Some(answer.code);
                break;
            }
        }
    }
    let held = accepted * PARKED_BODY;
    Ok(vec![(
        MAILBOX,
        Verdict::new(
            held > MAILBOX_BOUND,
            format!(
                "one account parked {} MiB in its own mailbox on relay 1 (bound {} MiB){}",
                held / (1024 * 1024),
                MAILBOX_BOUND / (1024 * 1024),
                match refusal {
                    Some(code) => format!(", then was refused ({code})"),
                    None => ", never refused".into(),
                }
            ),
        ),
    )])
}

/// One account makes a group of made-up members on the last relay and writes to it; then
/// an honest user of that relay writes to a user elsewhere. Judged by whether the honest
/// message is accepted in time.
pub async fn outbox(world: &World) -> Findings {
    findings(&[OUTBOX], outbox_attempt(world).await)
}

async fn outbox_attempt(world: &World) -> anyhow::Result<Findings> {
    let victim = world.relays.len() - 1;
    let view = &world.relays[victim];
    let mut flooder = RawUser::register(&view.addr).await?;
    let me = flooder.identity.address();
    let genesis = craft::genesis(
        flooder.identity.account_key(),
        "made up",
        &craft::made_up_users(MAX_GROUP_MEMBERS - 1),
    )?;
    let group = genesis.descriptor.group;
    let mut batch = vec![craft::group_change(
        flooder.identity.device_key(),
        me,
        &genesis,
    )];
    for _ in 0..OUTBOX_MESSAGES {
        batch.push(craft::envelope(
            flooder.identity.device_key(),
            EnvelopeId::random(),
            me,
            Recipient::Group(group),
            Kind::Message,
            vec![0x42; 64],
        ));
    }
    let sent = batch.len();
    let outcomes = flooder.client.send(batch).await?;
    let accepted = match &outcomes {
        Ok(outcomes) => outcomes
            .iter()
            .filter(|outcome| outcome.is_stored())
            .count(),
        Err(_) => 0,
    };
    let queued = view
        .metric("tidings_outbox_envelopes", "")
        .await
        .unwrap_or(0.0);

    let probe = world.probe_user("outbox-probe", victim).await?;
    world.introduce(&probe, "alice", world.alice())?;
    let mut session = users::connect(&probe).await;
    let record = session.send_text("alice", "outbox probe").await?;
    let taken = eventually(PROBE_PATIENCE, || {
        Ok(probe
            .store()
            .message(&record.id)?
            .is_some_and(|record| record.status.is_sent()))
    });
    let flush = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = session.flush().await;
        }
    };
    let taken = tokio::select! {
        taken = taken => taken?,
        _ = flush => false,
    };
    let status = probe
        .store()
        .message(&record.id)?
        .map(|record| record.status)
        .context("the probe message vanished")?;
    Ok(vec![(
        OUTBOX,
        Verdict::new(
            !taken,
            format!(
                "one account's group of {} made-up members plus {} messages: {accepted} of {sent} envelopes accepted, relay {} outbox at {queued} entries (bound {OUTBOX_MAX}); an honest user's message to another relay {}",
                MAX_GROUP_MEMBERS - 1,
                OUTBOX_MESSAGES,
                victim + 1,
                describe(&status, taken)
            ),
        ),
    )])
}

fn describe(status: &MessageStatus, taken: bool) -> String {
    if taken {
        return "was accepted".into();
    }
    match status {
        MessageStatus::Failed(reason) => format!("failed: {reason}"),
        MessageStatus::Pending => format!(
            "was still not accepted after {} s",
            PROBE_PATIENCE.as_secs()
        ),
        other => format!("stood at {other:?}"),
    }
}
