//! `PublishDeviceList` and `GetDeviceList`: the home relay keeps and serves an account's
//! signed device list (revoking the devices a newer one drops), and fetches other users'
//! lists from their home relays.

use std::{sync::Arc, time::Duration};

use tidings_protocol::{
    Address, BoundedVec, DeviceListError, ErrorAnswer, ErrorCode, SignedDeviceList, UserId,
    client::{DeviceSeen, Response},
    federation::{FederationRequest, FederationResponse},
    limits::MAX_DEVICES_PER_ACCOUNT,
};

use super::{Answer, context::ClientContext};
use crate::{
    federation::{HomeAnswer, ask_home},
    ingest::storage_answer,
    metrics::DeviceListVerdict,
    store::DeviceListOutcome,
};

/// Verifies a list the session's user published and keeps it if it succeeds the held one;
/// answers with the list held afterwards.
pub(super) async fn publish(cx: Arc<ClientContext>, me: Address, list: SignedDeviceList) -> Answer {
    let refuse = |verdict, code, detail: String| {
        cx.metrics.device_lists.count(verdict);
        Err(ErrorAnswer::new(code, detail))
    };
    if list.list.user != me.user {
        return refuse(
            DeviceListVerdict::WrongUser,
            ErrorCode::SenderMismatch,
            "the device list is for another user".into(),
        );
    }
    if let Err(error) = list.verify() {
        let code = match error {
            DeviceListError::Forged => ErrorCode::BadSignature,
            _ => ErrorCode::Malformed,
        };
        return refuse(DeviceListVerdict::Forged, code, error.to_string());
    }
    if !list.contains(&me.device) {
        return refuse(
            DeviceListVerdict::MissingSelf,
            ErrorCode::Malformed,
            "the device list does not name the publishing device".into(),
        );
    }
    cx.disk.admit()?;
    let outcome = cx
        .store
        .publish_device_list(list.clone())
        .await
        .map_err(storage_answer)?;
    match outcome {
        DeviceListOutcome::Stored { revoked } => {
            cx.metrics.device_lists.count(DeviceListVerdict::Stored);
            end_revoked(&cx, &revoked);
            Ok(Response::DeviceList {
                list: Some(Box::new(list)),
                seen: BoundedVec::default(),
            })
        }
        DeviceListOutcome::Stale { held } => refuse(
            DeviceListVerdict::Stale,
            ErrorCode::StaleDeviceList,
            format!(
                "stale: version {} is not above the held {held}",
                list.list.version
            ),
        ),
        DeviceListOutcome::OverLimit { max } => refuse(
            DeviceListVerdict::OverLimit,
            ErrorCode::QuotaExceeded,
            format!(
                "the list names {} devices; this relay keeps at most {max}",
                list.list.devices.len()
            ),
        ),
        DeviceListOutcome::NotHome => Err(ErrorAnswer::new(
            ErrorCode::WrongRelay,
            "your home is another relay",
        )),
        DeviceListOutcome::Refused(error) => refuse(
            DeviceListVerdict::Stale,
            ErrorCode::StaleDeviceList,
            error.to_string(),
        ),
    }
}

/// Ends the sessions of devices a stored list revoked, and counts them.
pub(super) fn end_revoked(cx: &ClientContext, revoked: &[tidings_protocol::DeviceId]) {
    if revoked.is_empty() {
        return;
    }
    cx.metrics.device_lists.revoked(revoked.len());
    let ended = cx.live_devices.revoke(revoked);
    cx.push.forget(revoked);
    tracing::info!(devices = revoked.len(), sessions = ended, "devices revoked");
}

/// The list of `user`: held here if the user is homed here, else asked of their home relay
/// (device lists are public). The asker's own list comes with what this relay knows of each
/// device: online now, last seen.
pub(super) async fn get(cx: Arc<ClientContext>, me: Address, user: UserId) -> Answer {
    let local = cx
        .store
        .home_device_list(user, cx.network.peer_id().to_string())
        .await
        .map_err(storage_answer)?;
    let list = match local {
        Some(list) => Some(list),
        None if user == me.user => None,
        None => remote_device_list(&cx, user).await?,
    };
    let seen = if user == me.user {
        seen(&cx, user).await?
    } else {
        BoundedVec::default()
    };
    Ok(Response::DeviceList {
        list: list.map(Box::new),
        seen,
    })
}

/// Times a device-list lookup at another relay is tried before the device is told to retry
/// (well within the client's 30 s request timeout).
const REMOTE_LIST_ATTEMPTS: u32 = 5;

/// The pause before the second try; it doubles after each failed one (0.5 + 1 + 2 + 4 s).
const REMOTE_LIST_RETRY: Duration = Duration::from_millis(500);

/// Asks `user`'s home relay for their list, if another relay is their home; the answer is
/// checked to be `user`'s, signed by the account. A home relay that cannot be reached (one
/// restarting, a link being re-made) is tried a few times, its home looked up again each
/// time (a restarted relay may listen elsewhere): a device that gets an envelope from an
/// unlisted device needs the list to take it. A user with no home record costs at most two
/// lookups here, as the directory remembers a miss for a few seconds.
async fn remote_device_list(
    cx: &ClientContext,
    user: UserId,
) -> Result<Option<SignedDeviceList>, ErrorAnswer> {
    let mut pause = REMOTE_LIST_RETRY;
    let mut attempt = 1;
    loop {
        match remote_device_list_once(cx, user).await {
            Err(answer)
                if answer.code == ErrorCode::Unavailable && attempt < REMOTE_LIST_ATTEMPTS =>
            {
                tracing::debug!(%user, %answer, attempt, "device list lookup failed; trying again");
                tokio::select! {
                    _ = cx.shutdown.cancelled() => return Err(answer),
                    () = tokio::time::sleep(pause) => {}
                }
                pause *= 2;
                attempt += 1;
            }
            Err(answer) => {
                tracing::info!(%user, %answer, attempt, "device list lookup failed");
                return Err(answer);
            }
            outcome => return outcome,
        }
    }
}

async fn remote_device_list_once(
    cx: &ClientContext,
    user: UserId,
) -> Result<Option<SignedDeviceList>, ErrorAnswer> {
    let request = FederationRequest::DeviceList { user };
    match ask_home(&cx.directory, &cx.links, user, request).await? {
        HomeAnswer::Local | HomeAnswer::Remote(FederationResponse::DeviceList(None)) => Ok(None),
        HomeAnswer::Remote(FederationResponse::DeviceList(Some(list)))
            if list.list.user == user && list.verify().is_ok() =>
        {
            Ok(Some(*list))
        }
        HomeAnswer::Remote(_) => Err(ErrorAnswer::new(
            ErrorCode::BadSignature,
            "the home relay answered with something else than the user's signed device list",
        )),
    }
}

/// What this relay knows of each registered device of local user `user`.
async fn seen(
    cx: &ClientContext,
    user: UserId,
) -> Result<BoundedVec<DeviceSeen, MAX_DEVICES_PER_ACCOUNT>, ErrorAnswer> {
    let online = cx.presence.online_devices(user).await;
    let devices = cx.store.devices_of(user).await.map_err(storage_answer)?;
    let seen: Vec<DeviceSeen> = devices
        .into_iter()
        .take(MAX_DEVICES_PER_ACCOUNT)
        .map(|record| DeviceSeen {
            device: record.cert.device,
            online: online.contains(&record.cert.device),
            last_seen_ms: record.last_seen_ms,
        })
        .collect();
    Ok(BoundedVec::new(seen).unwrap_or_default())
}
