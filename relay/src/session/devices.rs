//! `PublishDeviceList` and `GetDeviceList`: the home relay keeps and serves an account's
//! signed device list.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, DeviceListError, ErrorAnswer, ErrorCode, SignedDeviceList, UserId,
    client::Response,
};

use super::{Answer, context::ClientContext};
use libp2p::PeerId;

use crate::{
    ingest::storage_answer,
    metrics::DeviceListVerdict,
    store::{DeviceListOutcome, Store, StoreError},
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
        DeviceListOutcome::Stored => {
            cx.metrics.device_lists.count(DeviceListVerdict::Stored);
            Ok(Response::DeviceList {
                list: Some(Box::new(list)),
                seen: BoundedVec::default(),
            })
        }
        DeviceListOutcome::Stale { held } => refuse(
            DeviceListVerdict::Stale,
            ErrorCode::BadDescriptor,
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
            ErrorCode::BadDescriptor,
            error.to_string(),
        ),
    }
}

/// The list held for `user` if the user is homed here (device lists are public).
pub(super) async fn get(cx: Arc<ClientContext>, user: UserId) -> Answer {
    let list = home_device_list(&cx.store, &cx.network.peer_id(), user)
        .await
        .map_err(storage_answer)?;
    Ok(Response::DeviceList {
        list: list.map(Box::new),
        seen: BoundedVec::default(),
    })
}

/// The list held for `user` if `user` is homed at this relay (`self_peer`), else `None`.
pub(crate) async fn home_device_list(
    store: &Store,
    self_peer: &PeerId,
    user: UserId,
) -> Result<Option<SignedDeviceList>, StoreError> {
    let self_peer = self_peer.to_string();
    let homed_here = store
        .user(user)
        .await?
        .is_some_and(|record| record.is_home(&self_peer));
    if !homed_here {
        return Ok(None);
    }
    store.device_list(user).await
}
