//! Sender impersonation (issue 12, item 1): Trudy opens an Olm session with Bob by one honest
//! message, then sends him, through the rogue relay, a message whose sender is Alice's user
//! with Trudy's device, the body carrying sender keys; then, the same way, a group key share
//! and a group message as Carol. Judged at Bob: did his client store a text from Alice that
//! Alice never sent (or a group message from Carol), and does it map Alice to Trudy's device?

use std::time::Duration;

use anyhow::{Context, bail};
use tidings_client::{Conversation, MessageStatus};
use tidings_keys::GroupOutbound;
use tidings_protocol::{
    Address, EnvelopeId, Kind, Recipient, content::Payload, federation::FederationResponse,
};

use super::{
    Findings, Verdict, craft, findings,
    raw::RawUser,
    rogue,
    world::{World, eventually, readable},
};

const MESSAGE: &str = "impersonation_message";
const REBIND: &str = "impersonation_rebind";
const GROUP_MESSAGE: &str = "impersonation_group_message";

/// What Trudy makes Bob believe Alice wrote.
const FORGED_TEXT: &str = "It's Alice, new phone. Use this one from now on.";

/// What Trudy makes Bob believe Carol wrote in the group.
const FORGED_GROUP_TEXT: &str = "Carol here: the meeting moved, details from Trudy";

/// How long Bob's client gets to store Trudy's honest first message.
const HELLO_PATIENCE: Duration = Duration::from_secs(40);

/// How long Bob's client gets to store the forgery (when his relay took it).
const OBSERVE: Duration = Duration::from_secs(6);

/// How often Bob's mapping of Alice to a device is looked at.
const REBIND_POLL: Duration = Duration::from_millis(20);

/// Runs the attack; verdicts for the forged message and for the re-binding.
pub async fn run(world: &World) -> Findings {
    findings(&[MESSAGE, REBIND, GROUP_MESSAGE], attempt(world).await)
}

async fn attempt(world: &World) -> anyhow::Result<Findings> {
    let (alice, bob) = (world.alice(), world.bob());
    let bob_addr = bob.address();
    let mut trudy = RawUser::register(&world.relays[0].addr).await?;
    let trudy_addr = trudy.identity.address();
    let bundle = trudy.client.claim(bob_addr).await?;
    let mut session = trudy.olm.create_outbound_session(&bob.user_id(), &bundle)?;
    let keys = trudy.olm.sender_keys(&trudy.identity);

    // One honest message from Trudy's own account: Bob's client now has a session with her.
    let hello_id = EnvelopeId::random();
    let body = craft::olm_text(
        &mut session,
        &keys,
        hello_id,
        trudy_addr,
        bob_addr,
        "hi Bob, Trudy here",
        false,
    )?;
    let hello = craft::envelope(
        trudy.identity.device_key(),
        hello_id,
        trudy_addr,
        Recipient::Direct(bob_addr),
        Kind::Message,
        body.encode(),
    );
    let sent = trudy.client.send(vec![hello]).await?;
    if !matches!(sent.as_deref(), Ok([outcome]) if outcome.is_stored()) {
        bail!("Trudy's own first message was refused: {sent:?}");
    }
    if !eventually(HELLO_PATIENCE, || Ok(readable(bob, &hello_id)?.is_some())).await? {
        bail!("Bob never stored Trudy's honest first message");
    }

    // The forgery: Alice's user, Trudy's device, on the session Bob holds with Trudy.
    let posing = Address {
        user: alice.user_id(),
        device: trudy_addr.device,
    };
    let forged_id = EnvelopeId::random();
    let body = craft::olm_text(
        &mut session,
        &keys,
        forged_id,
        posing,
        bob_addr,
        FORGED_TEXT,
        true,
    )?;
    let forged = craft::envelope(
        trudy.identity.device_key(),
        forged_id,
        posing,
        Recipient::Direct(bob_addr),
        Kind::Message,
        body.encode(),
    );
    let bob_home = &world.relays[world.home_of(1)];
    let mut stream = world.rogue.open(bob_home.peer).await?;
    let item = rogue::forward_item(forged, vec![bob.user_id()], 0)?;
    let answer = stream
        .request(rogue::forward(
            vec![item],
            vec![trudy.identity.cert().clone()],
        )?)
        .await
        .context("forwarding the forgery")?;
    let (taken, relay_said) = rogue::judge_forward(answer, "Bob's relay");

    let forged_stored = || -> anyhow::Result<bool> {
        Ok(readable(bob, &forged_id)?
            .is_some_and(|record| record.peer == alice.user_id() && record.text == FORGED_TEXT))
    };
    // Alice's honest messages bind her back to her device as they arrive, so the mapping is
    // watched closely; whatever Bob sent her meanwhile shows at Alice as not for her device.
    let (mut stored, mut rebound) = (false, false);
    let deadline = tokio::time::Instant::now() + if taken { OBSERVE } else { Duration::ZERO };
    loop {
        stored |= forged_stored()?;
        rebound |= bob
            .store()
            .device_list(&alice.user_id())?
            .is_some_and(|list| list.contains(&trudy_addr.device));
        // Bob's client recorded it as not openable: it will not be stored readable later.
        let refused = !stored && bob.store().message(&forged_id)?.is_some();
        if (stored && rebound) || refused || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(REBIND_POLL).await;
    }
    let group = forge_group_message(world, &mut trudy, &mut session, &mut stream).await?;
    let misdirected = alice
        .store()
        .history(&Conversation::Direct(bob.user_id()))?
        .iter()
        .filter(|record| {
            matches!(&record.status, MessageStatus::Failed(reason) if reason.contains("not addressed to this device"))
        })
        .count();
    Ok(vec![
        (
            MESSAGE,
            Verdict::new(
                stored,
                format!(
                    "{relay_said}; Bob's client {} the forged text as from Alice",
                    if stored { "stored" } else { "did not store" }
                ),
            ),
        ),
        (GROUP_MESSAGE, group),
        (
            REBIND,
            Verdict::new(
                rebound || misdirected > 0,
                format!(
                    "Bob's client {} Alice to Trudy's device; {misdirected} of Bob's messages reached Alice encrypted for another device",
                    if rebound { "mapped" } else { "never mapped" }
                ),
            ),
        ),
    ])
}

/// The same flaw with a group key share: Trudy sends Bob, as Carol (user 2, a member in
/// every version of the group), the key of a Megolm session of her own, then a group message
/// "from Carol" on it. Judged by whether Bob's group history shows it as Carol's.
async fn forge_group_message(
    world: &World,
    trudy: &mut RawUser,
    session: &mut tidings_keys::OlmSession,
    stream: &mut rogue::FederationStream,
) -> anyhow::Result<Verdict> {
    let (bob, carol) = (world.bob(), &world.honest[2]);
    let bob_addr = bob.address();
    let keys = trudy.olm.sender_keys(&trudy.identity);
    let posing = Address {
        user: carol.user_id(),
        device: trudy.identity.device_id(),
    };
    let mut megolm = GroupOutbound::new();
    let share = Payload::GroupKey {
        group: world.group,
        session_key: megolm.session_key(),
    };
    let share_id = EnvelopeId::random();
    let body = craft::olm_body(session, &keys, share_id, posing, bob_addr, share, true)?;
    let share = craft::envelope(
        trudy.identity.device_key(),
        share_id,
        posing,
        Recipient::Direct(bob_addr),
        Kind::KeyShare,
        body.encode(),
    );
    let message_id = EnvelopeId::random();
    let body = craft::megolm_text(
        &mut megolm,
        message_id,
        posing,
        world.group,
        FORGED_GROUP_TEXT,
    );
    let message = craft::envelope(
        trudy.identity.device_key(),
        message_id,
        posing,
        Recipient::Group(world.group),
        Kind::Message,
        body.encode(),
    );
    let version = match stream.request(rogue::group_version(world.group)).await? {
        Ok(FederationResponse::GroupVersion(version)) => version,
        other => bail!("Bob's relay did not say which version of the group it holds: {other:?}"),
    };
    let items = vec![
        rogue::forward_item(share, vec![bob.user_id()], 0)?,
        rogue::forward_item(message, vec![bob.user_id()], version)?,
    ];
    let certs = vec![trudy.identity.cert().clone()];
    let answer = stream.request(rogue::forward(items, certs)?).await?;
    let (taken, relay_said) = rogue::judge_forward(answer, "Bob's relay");
    let shown = || -> anyhow::Result<bool> {
        Ok(readable(bob, &message_id)?.is_some_and(|record| {
            record.peer == carol.user_id() && record.text == FORGED_GROUP_TEXT
        }))
    };
    let patience = if taken { OBSERVE } else { Duration::ZERO };
    // Decided once Bob's client recorded the message at all (shown, or as not openable).
    eventually(patience, || Ok(bob.store().message(&message_id)?.is_some())).await?;
    let shown = shown()?;
    Ok(Verdict::new(
        shown,
        format!(
            "a key share and a group message as Carol with Trudy's device: {relay_said}; Bob's client {} the group message as Carol's",
            if shown { "showed" } else { "did not show" }
        ),
    ))
}
