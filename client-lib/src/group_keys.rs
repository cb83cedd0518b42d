//! Giving group members the key of this device's Megolm sending session, over Olm.

use tidings_protocol::{BoundedVec, DeviceId, GroupId, UserId, limits::MAX_BATCH_ENVELOPES};

use crate::{
    calls::{ClaimBundles, Send},
    client::Client,
    connection::Connection,
    error::{ClientError, SealError},
};

/// Gives every member who lacks it the key of this device's current sending session for
/// `group` (making a new session first if a member who had the old key left).
pub(crate) async fn share_group_key(
    client: &Client,
    connection: &Connection,
    group: GroupId,
) -> Result<(), SealError> {
    let plan = client
        .blocking(move |inner| inner.store.plan_group_key(&inner.identity, &group))
        .await?;
    let Some(plan) = plan else {
        return Err(SealError::Wait(format!(
            "group {group} is not known here yet"
        )));
    };
    if plan.need.is_empty() {
        return Ok(());
    }
    let mut devices: Vec<(UserId, DeviceId)> = Vec::new();
    let mut missing = Vec::new();
    let mut later = Vec::new();
    for user in plan.need {
        match client
            .blocking(move |inner| inner.store.device_for(&user))
            .await?
        {
            Some(device) => devices.push((user, device)),
            None => missing.push(user),
        }
    }
    for chunk in missing.chunks(MAX_BATCH_ENVELOPES) {
        let users = BoundedVec::new(chunk.to_vec()).unwrap_or_default();
        let bundles = connection
            .call(ClaimBundles { users })
            .await
            .map_err(ClientError::from)?;
        for (user, bundle) in chunk.iter().copied().zip(bundles) {
            let bundle = match bundle {
                Ok(bundle) => bundle,
                Err(answer) => {
                    tracing::info!(%user, %answer, "a member gets the group key later");
                    later.push(user);
                    continue;
                }
            };
            let installed = client
                .blocking(move |inner| {
                    inner
                        .store
                        .install_outbound(&inner.identity, &user, &bundle)
                })
                .await;
            match installed {
                Ok(device) => devices.push((user, device)),
                Err(error) => {
                    tracing::warn!(%user, %error, "a member's keys do not verify");
                    later.push(user);
                }
            }
        }
    }
    if !later.is_empty() {
        let key = plan.session_key.clone();
        client
            .blocking(move |inner| inner.store.queue_key_shares(group, &key, &later))
            .await?;
    }
    for chunk in devices.chunks(MAX_BATCH_ENVELOPES) {
        let chunk = chunk.to_vec();
        let key = plan.session_key.clone();
        let sealed = client
            .blocking(move |inner| {
                inner
                    .store
                    .seal_key_shares(&inner.identity, group, &key, &chunk)
            })
            .await?;
        let (users, envelopes): (Vec<UserId>, Vec<_>) = sealed.into_iter().unzip();
        let envelopes = BoundedVec::new(envelopes).unwrap_or_default();
        let outcomes = connection
            .call(Send { envelopes })
            .await
            .map_err(ClientError::from)?;
        let shared: Vec<UserId> = users
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| outcome.is_stored())
            .map(|(user, _)| user)
            .collect();
        client
            .blocking(move |inner| inner.store.mark_key_shared(&group, &shared))
            .await?;
    }
    Ok(())
}
