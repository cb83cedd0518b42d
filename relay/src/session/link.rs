//! `PutLink` and `TakeLink`: a device of an account leaves a sealed package for a device being linked; that device takes it, before it registers.

use std::sync::Arc;

use tidings_protocol::{Address, DeviceId, ErrorAnswer, ErrorCode, client::Response};
use tokio::time::Instant;

use super::{Answer, context::ClientContext};
use crate::{ingest::storage_answer, link_slots::PutLinkError};

/// Leaves `package` for `device` if the account's held device list names it.
pub(super) async fn put(
    cx: Arc<ClientContext>,
    me: Address,
    device: DeviceId,
    package: Vec<u8>,
) -> Answer {
    let held = cx
        .store
        .device_list(me.user)
        .await
        .map_err(storage_answer)?;
    if !held.is_some_and(|list| list.contains(&device)) {
        return Err(ErrorAnswer::new(
            ErrorCode::UnknownRecipient,
            format!(
                "device {device} is not on your account's device list here; publish a list \
                 naming it before leaving it a link package"
            ),
        ));
    }
    cx.link_slots
        .put(me.user, device, package, Instant::now())
        .map_err(|error| {
            let code = match error {
                PutLinkError::AccountFull { .. } => ErrorCode::QuotaExceeded,
                PutLinkError::RelayFull { .. } | PutLinkError::TakenByAnotherAccount => {
                    ErrorCode::Unavailable
                }
            };
            ErrorAnswer::new(code, error.to_string())
        })?;
    tracing::debug!(user = %me.user, %device, "link package left");
    Ok(Response::LinkStored)
}

/// Hands the stream's own device the package left for it, once (registered or not).
pub(super) fn take(cx: &ClientContext, device: DeviceId) -> Answer {
    Ok(Response::Link {
        package: cx.link_slots.take(device, Instant::now()),
    })
}
