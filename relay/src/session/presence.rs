//! `SetPresence`, `WatchPresence` and `Ephemeral`: presence settings, watches and typing.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode, RawEnvelope, UserId, client::Response,
    presence::Visibility,
};

use super::{Answer, context::ClientContext};
use crate::{
    ingest::storage_answer,
    presence::{LiveSender, SessionId},
    store::PresenceChange,
};

/// Stores who may see the user's presence; watchers are told at once.
pub(super) async fn set(
    cx: Arc<ClientContext>,
    me: Address,
    visibility: Visibility,
    allowed: Vec<UserId>,
) -> Answer {
    let change = PresenceChange::Settings {
        visibility,
        allowed,
    };
    cx.presence
        .set_visibility(me.user, change)
        .await
        .map_err(storage_answer)?;
    Ok(Response::PresenceSet)
}

/// Watches users' presence for this session.
pub(super) async fn watch(
    cx: Arc<ClientContext>,
    session: SessionId,
    me: Address,
    live: LiveSender,
    users: Vec<UserId>,
) -> Answer {
    let reports = cx.presence.watch(session, me.user, live, users).await;
    BoundedVec::new(reports)
        .map(|reports| Response::Presence { reports })
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
}

/// Passes a typing notice to the recipient's live devices.
pub(super) async fn ephemeral(
    cx: Arc<ClientContext>,
    me: Address,
    envelope: RawEnvelope,
) -> Answer {
    let reached = cx.presence.pass_ephemeral(me, envelope).await?;
    Ok(Response::EphemeralPassed { reached })
}
