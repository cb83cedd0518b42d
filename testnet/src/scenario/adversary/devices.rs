//! Devices of an account (issue 14): a device the account removed tries to keep its stream,
//! come back (alone, or by a replay of the list that named it) and still be written to; and
//! the rogue relay answers a device-list lookup for its user with a list it forged. Judged by
//! what the honest relay answers.

use std::{sync::atomic::Ordering, time::Duration};

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use tidings_protocol::{
    DeviceCert, DeviceEntry, DeviceList, EnvelopeId, Kind, Recipient, SignedDeviceList,
    client::{Request, Response, SendOutcome},
};

use super::{Findings, Verdict, craft, findings, raw::RawClient, raw::RawUser, world::World};

const KEPT_STREAM: &str = "removed_device_kept_stream";
const RETURNED: &str = "removed_device_returned";
const REACHED: &str = "removed_device_reached";
const FORGED_LIST: &str = "forged_device_list";

/// How soon a removed device's stream must end (the bound it is judged by).
const REVOKE_BOUND: Duration = Duration::from_secs(5);

/// Times the forged-list lookup is tried while the honest relay cannot find the rogue's user
/// yet (the DHT may lag).
const LOOKUP_TRIES: usize = 20;

/// A list of `account` naming `devices`, at `version`, signed by `signer`.
pub fn device_list(
    account: &SigningKey,
    version: u64,
    devices: &[&SigningKey],
    signer: &SigningKey,
) -> anyhow::Result<SignedDeviceList> {
    let entries = devices
        .iter()
        .map(|device| DeviceEntry {
            device: craft::device_of(device),
            name: "raw device".into(),
            added_at_ms: 1,
        })
        .collect();
    Ok(DeviceList::new(craft::user_of(account), version, entries)?.sign(signer))
}

async fn publish(client: &mut RawClient, list: SignedDeviceList) -> anyhow::Result<bool> {
    Ok(client
        .request(Request::PublishDeviceList {
            list: Box::new(list),
        })
        .await?
        .is_ok())
}

/// Runs the removed-device attacks on relay 1.
pub async fn removed(world: &World) -> Findings {
    findings(
        &[KEPT_STREAM, RETURNED, REACHED],
        removed_attempt(world).await,
    )
}

async fn removed_attempt(world: &World) -> anyhow::Result<Findings> {
    let relay = &world.relays[0].addr;
    let account = craft::fresh_key();
    let (phone_key, laptop_key) = (craft::fresh_key(), craft::fresh_key());
    let cert = |device: &SigningKey| DeviceCert::issue(&account, craft::device_of(device), 1);
    let mut phone = RawClient::connect(&phone_key, relay).await?;
    phone.register(cert(&phone_key)).await?;
    let both = device_list(&account, 1, &[&phone_key, &laptop_key], &account)?;
    if !publish(&mut phone, both.clone()).await? {
        bail!("the relay did not take the account's first list");
    }
    let mut laptop = RawClient::connect(&laptop_key, relay).await?;
    laptop.register(cert(&laptop_key)).await?;
    laptop.subscribe().await?;
    let laptop_address = tidings_protocol::Address {
        user: craft::user_of(&account),
        device: craft::device_of(&laptop_key),
    };

    // The phone removes the laptop.
    let without = device_list(&account, 2, &[&phone_key], &account)?;
    if !publish(&mut phone, without).await? {
        bail!("the relay did not take the list without the laptop");
    }
    let closed = laptop.closed_within(REVOKE_BOUND).await;

    // The laptop tries to come back on its own, then by a replay of the list that named it.
    let mut again = RawClient::connect(&laptop_key, relay).await?;
    let alone = again.register(cert(&laptop_key)).await.is_ok();
    let replayed = publish(&mut phone, both).await?;
    let after_replay = replayed && again.register(cert(&laptop_key)).await.is_ok();

    // A stranger writes to it.
    let mut stranger = RawUser::register(relay).await?;
    let sender = stranger.identity.address();
    let envelope = craft::envelope(
        stranger.identity.device_key(),
        EnvelopeId::random(),
        sender,
        Recipient::Direct(laptop_address),
        Kind::Message,
        b"still there?".to_vec(),
    );
    let outcome = stranger
        .client
        .send(vec![envelope])
        .await?
        .map_err(|answer| anyhow::anyhow!("the send was refused whole: {answer}"))?;
    let reached = matches!(outcome.first(), Some(SendOutcome::Accepted));

    Ok(vec![
        (
            KEPT_STREAM,
            Verdict::new(
                !closed,
                format!(
                    "the removed device's subscribed stream {} within {REVOKE_BOUND:?} of the new list",
                    if closed { "was closed" } else { "stayed open" }
                ),
            ),
        ),
        (
            RETURNED,
            Verdict::new(
                alone || after_replay,
                format!(
                    "registering again on its own was {}; replaying the list that named it was {}",
                    if alone { "taken" } else { "refused" },
                    if replayed { "taken" } else { "refused" },
                ),
            ),
        ),
        (
            REACHED,
            Verdict::new(
                reached,
                format!("an envelope for the removed device was answered {outcome:?}"),
            ),
        ),
    ])
}

/// Runs the forged-list lookup: an honest device on relay 1 asks for the device list of the
/// rogue relay's user, which the rogue answers with a list signed by another key.
pub async fn forged_list(world: &World) -> Findings {
    findings(&[FORGED_LIST], forged_attempt(world).await)
}

async fn forged_attempt(world: &World) -> anyhow::Result<Findings> {
    let zed = world
        .zed
        .as_ref()
        .context("the rogue relay hosts no user")?
        .user;
    let mut asker = RawUser::register(&world.relays[0].addr).await?;
    let before = world.rogue_lists_asked.load(Ordering::Relaxed);
    let mut answer = None;
    for _ in 0..LOOKUP_TRIES {
        let got = asker
            .client
            .request(Request::GetDeviceList { user: zed })
            .await?;
        if world.rogue_lists_asked.load(Ordering::Relaxed) > before {
            answer = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let Some(answer) = answer else {
        bail!("relay 1 never asked the rogue relay for its user's list");
    };
    let passed = matches!(&answer, Ok(Response::DeviceList { list: Some(_), .. }));
    Ok(vec![(
        FORGED_LIST,
        Verdict::new(
            passed,
            format!(
                "the rogue relay answered a device-list lookup with a forged list; relay 1 {}",
                if passed {
                    "passed it on"
                } else {
                    "did not pass it on"
                }
            ),
        ),
    )])
}
