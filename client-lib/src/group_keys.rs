//! Giving every member device (our own other devices too) the key of this device's Megolm
//! sending session, over Olm.

use std::collections::VecDeque;

use tidings_protocol::{Address, BoundedVec, GroupId, UserId, limits::MAX_BATCH_ENVELOPES};

use crate::{
    calls::Send,
    client::Client,
    connection::Connection,
    device_lists::refresh_list,
    error::{ClientError, SealError},
    events::Event,
    olm_sessions::reach,
};

/// Gives every member device that lacks it the key of this device's current sending session
/// for `group` (making a new session first if a device that had the old key is no longer a
/// member's listed device: the member left, or removed that device).
pub(crate) async fn share_group_key(
    client: &Client,
    connection: &Connection,
    group: GroupId,
    events: &mut VecDeque<Event>,
) -> Result<(), SealError> {
    // Members' lists (ours too) as they are now: a device dropped from one rotates the
    // session below.
    let members: Vec<UserId> = client
        .blocking(move |inner| inner.store.group(&group))
        .await?
        .map(|known| known.descriptor.members.iter().map(|m| m.user).collect())
        .unwrap_or_default();
    for user in members {
        if !client.inner.list_checks.is_fresh(&user) {
            refresh_list(client, connection, user, events).await?;
        }
    }
    let plan = client
        .blocking(move |inner| inner.store.plan_group_key(&inner.identity, &group))
        .await?;
    let Some(plan) = plan else {
        return Err(SealError::Wait(format!(
            "group {group} is not known here yet"
        )));
    };
    if !plan.unlisted.is_empty() {
        // Still unknown (their relay is away): the key waits in the outbox for them.
        let (key, users) = (plan.session_key.clone(), plan.unlisted.clone());
        client
            .blocking(move |inner| inner.store.queue_key_for_users(group, &key, &users))
            .await?;
    }
    if plan.need.is_empty() {
        return Ok(());
    }
    let reach = reach(client, connection, plan.need).await?;
    // Whatever kept a device from its share now (no keys yet, its relay away or refusing
    // for now), the outbox keeps trying, so it can read what is sent meanwhile once the
    // share arrives.
    let later: Vec<Address> = reach
        .unreachable
        .iter()
        .map(|(device, why)| {
            tracing::info!(%device, ?why, "a member device gets the group key later");
            *device
        })
        .collect();
    if !later.is_empty() {
        let key = plan.session_key.clone();
        client
            .blocking(move |inner| inner.store.queue_key_shares(group, &key, &later))
            .await?;
    }
    for chunk in reach.ready.chunks(MAX_BATCH_ENVELOPES) {
        let chunk = chunk.to_vec();
        let key = plan.session_key.clone();
        let sealed = client
            .blocking(move |inner| {
                inner
                    .store
                    .seal_key_shares(&inner.identity, group, &key, &chunk)
            })
            .await?;
        let (devices, envelopes): (Vec<Address>, Vec<_>) = sealed.into_iter().unzip();
        let envelopes = BoundedVec::new(envelopes).map_err(|source| ClientError::TooMany {
            what: "key shares",
            source,
        })?;
        let outcomes = connection
            .call(Send { envelopes })
            .await
            .map_err(ClientError::from)?;
        let shared: Vec<Address> = devices
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| outcome.is_stored())
            .map(|(device, _)| device)
            .collect();
        client
            .blocking(move |inner| inner.store.mark_key_shared(&group, &shared))
            .await?;
    }
    Ok(())
}
