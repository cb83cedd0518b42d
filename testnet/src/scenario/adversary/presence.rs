//! Presence and typing (issue 12, items 5 and 9): a stranger, and the rogue relay for a
//! user of its own, learn whether a user who shows presence to nobody is online (the
//! `reached` count of a typing notice, reports pushed at her transitions); and the rogue
//! relay makes a user see "Alice is typing" that Alice never sent.

use std::time::Duration;

use anyhow::Context;

use tidings_client::Event;
use tidings_protocol::{
    Address, Recipient, client::RelayFrame, federation::FederationResponse, presence::Visibility,
};

use super::{Findings, Verdict, craft, findings, raw::RawUser, rogue, world::World};
use crate::scenario::users;

const REACHED: &str = "presence_reached_oracle";
const TRANSITIONS: &str = "presence_transition_reports";
const RELAYED: &str = "presence_relay_reports";
const TYPING: &str = "typing_forgery";

/// How long the relays get to notice a departure or an arrival.
const SETTLE: Duration = Duration::from_millis(1500);

/// How long the victim watches for the forged typing notice.
const OBSERVE: Duration = Duration::from_secs(4);

/// A subject with visibility `nobody` comes and goes; a stranger watches and types to her.
pub async fn leak(world: &World) -> Findings {
    findings(&[REACHED, TRANSITIONS, RELAYED], leak_attempt(world).await)
}

async fn leak_attempt(world: &World) -> anyhow::Result<Findings> {
    let home = world.relays.len() - 1;
    let subject = world.probe_user("nobody-sees-me", home).await?;
    let mut session = users::connect(&subject).await;
    session.subscribe().await?;
    session.set_presence(Visibility::Nobody).await?;

    // A stranger at her own relay, where watchers are told of every change.
    let mut stranger = RawUser::register(&world.relays[home].addr).await?;
    let me = stranger.identity.address();
    stranger.client.subscribe().await?;
    let first = stranger.client.watch(vec![subject.user_id()]).await?;
    stranger.client.pushes.clear();
    // The rogue relay watches her too, for its own user.
    let zed = world.zed.as_ref().context("the rogue hosts no user")?.user;
    let mut stream = world.rogue.open(world.relays[home].peer).await?;
    let rogue_watch = match stream
        .request(rogue::watch_presence(zed, vec![subject.user_id()])?)
        .await?
    {
        Ok(FederationResponse::Presence { reports }) => format!(
            "answered {:?} to",
            reports.first().map(|report| report.state)
        ),
        Ok(other) => format!("answered {other:?} to"),
        Err(refusal) => format!("refused ({})", refusal.code),
    };
    let heard_before = heard_of(world, &subject.user_id());
    let typing_to = Recipient::Direct(subject.address());
    let online = reach(&mut stranger, me, typing_to).await?;
    session.close().await;
    tokio::time::sleep(SETTLE).await;
    let offline = reach(&mut stranger, me, typing_to).await?;
    let mut session = users::connect(&subject).await;
    session.subscribe().await?;
    tokio::time::sleep(SETTLE).await;
    // Whatever else the relay pushed to the stranger meanwhile.
    while let Some(frame) = stranger
        .client
        .next_frame(Duration::from_millis(300))
        .await?
    {
        stranger.client.pushes.push_back(frame);
    }
    let pushed = stranger
        .client
        .pushes
        .iter()
        .filter(|frame| matches!(frame, RelayFrame::Presence(report) if report.user == subject.user_id()))
        .count();
    session.close().await;
    let relayed = heard_of(world, &subject.user_id()) - heard_before;
    Ok(vec![
        (
            RELAYED,
            Verdict::new(
                relayed > 0,
                format!(
                    "her relay {rogue_watch} the rogue relay's watch for a user of its own, then told it of {relayed} changes as she left and came back"
                ),
            ),
        ),
        (
            REACHED,
            Verdict::new(
                online != offline,
                format!(
                    "a stranger's typing notice to a user with presence `nobody` reached {online} while she was online, {offline} while offline"
                ),
            ),
        ),
        (
            TRANSITIONS,
            Verdict::new(
                pushed > 0,
                format!(
                    "the stranger's watch answered {:?}, then {pushed} presence reports came as she left and came back",
                    first.first().map(|report| report.state)
                ),
            ),
        ),
    ])
}

/// How many presence changes of `user` honest relays told the rogue relay of.
fn heard_of(world: &World, user: &tidings_protocol::UserId) -> usize {
    world
        .rogue_heard
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
        .filter(|report| report.user == *user)
        .count()
}

/// What the stranger's relay says a typing notice from `me` to `to` reached.
async fn reach(stranger: &mut RawUser, me: Address, to: Recipient) -> anyhow::Result<String> {
    let notice = craft::typing(stranger.identity.device_key(), me, to);
    Ok(match stranger.client.ephemeral(notice).await? {
        Ok(reached) => reached.to_string(),
        Err(refusal) => format!("refused ({})", refusal.code),
    })
}

/// The rogue relay passes a typing notice "from Alice" (her user, a device of its own) to a
/// user of Bob's relay, who watches for it.
pub async fn typing_forgery(world: &World) -> Findings {
    findings(&[TYPING], typing_attempt(world).await)
}

async fn typing_attempt(world: &World) -> anyhow::Result<Findings> {
    let home = world.home_of(1);
    let victim = world.probe_user("typing-victim", home).await?;
    let mut session = users::connect(&victim).await;
    session.subscribe().await?;
    // A device of the rogue's own user, claiming Alice's: the only certificate it can show
    // is its own account's.
    let device = craft::fresh_key();
    let account = craft::fresh_key();
    world.rogue.adopt(&account).await?;
    let cert = tidings_protocol::DeviceCert::issue(
        &account,
        craft::device_of(&device),
        tidings_protocol::now_ms(),
    );
    let posing = Address {
        user: world.alice().user_id(),
        device: craft::device_of(&device),
    };
    let notice = craft::typing(&device, posing, Recipient::Direct(victim.address()));
    let mut stream = world.rogue.open(world.relays[home].peer).await?;
    let answer = stream
        .request(rogue::ephemeral(notice, vec![victim.user_id()], cert)?)
        .await?;
    let relay_said = match answer {
        Ok(FederationResponse::EphemeralPassed { reached }) => {
            format!("the victim's relay passed it to {reached} devices")
        }
        Ok(other) => format!("the victim's relay answered {other:?}"),
        Err(refusal) => format!("the victim's relay refused ({})", refusal.code),
    };
    let alice = world.alice().user_id();
    let deadline = tokio::time::Instant::now() + OBSERVE;
    let mut seen = false;
    while let Ok(event) = tokio::time::timeout_at(deadline, session.next_event()).await {
        if matches!(event?, Event::Typing { from, typing: true, .. } if from == alice) {
            seen = true;
            break;
        }
    }
    session.close().await;
    Ok(vec![(
        TYPING,
        Verdict::new(
            seen,
            format!(
                "{relay_said}; the victim's client {} \"Alice is typing\"",
                if seen { "showed" } else { "never showed" }
            ),
        ),
    )])
}
