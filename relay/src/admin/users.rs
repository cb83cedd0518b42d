//! `users list` and `users show`: who is registered here and what they hold.

use tidings_protocol::UserId;

use super::{
    AdminContext,
    protocol::AdminError,
    replies::{
        DeviceDetail, MAX_LISTED_DEVICES, MAX_LISTED_USERS, UserDetail, UserList, UserSummary,
    },
};
use crate::store::UserUsage;

/// Parses a user id as `tidings` prints it.
pub(super) fn parse_user(text: &str) -> Result<UserId, AdminError> {
    text.trim()
        .parse()
        .map_err(|_| AdminError::BadUserId(text.chars().take(128).collect()))
}

fn summary(user: UserId, usage: &UserUsage, self_peer: &str) -> UserSummary {
    UserSummary {
        user: user.to_string(),
        registered_at_ms: usage.record.registered_at_ms,
        home_here: usage.record.is_home(self_peer),
        suspended_at_ms: usage.suspended_at_ms,
        devices: usage.devices.len() as u64,
        mailbox_entries: usage.devices.iter().map(|d| d.mailbox_entries).sum(),
        mailbox_bytes: usage.devices.iter().map(|d| d.mailbox_bytes).sum(),
        outbox_entries: usage.outbox_entries,
        media_bytes: usage.media_bytes,
        last_seen_ms: usage.devices.iter().filter_map(|d| d.last_seen_ms).max(),
    }
}

/// Answers `users list`.
pub(super) async fn list(cx: &AdminContext) -> Result<UserList, AdminError> {
    let usages = cx
        .store
        .user_usages(MAX_LISTED_USERS)
        .await
        .map_err(super::storage)?;
    let self_peer = cx.network.peer_id().to_string();
    Ok(UserList {
        truncated: usages.truncated,
        users: usages
            .users
            .iter()
            .map(|(user, usage)| summary(*user, usage, &self_peer))
            .collect(),
    })
}

/// Answers `users show USER`.
pub(super) async fn show(cx: &AdminContext, text: &str) -> Result<UserDetail, AdminError> {
    let user = parse_user(text)?;
    let usage = cx
        .store
        .user_usage(user)
        .await
        .map_err(super::storage)?
        .ok_or_else(|| AdminError::UnknownUser(user.to_string()))?;
    let self_peer = cx.network.peer_id().to_string();
    let devices = usage
        .devices
        .iter()
        .take(MAX_LISTED_DEVICES)
        .map(|device| DeviceDetail {
            device: device.device.to_string(),
            registered_at_ms: device.registered_at_ms,
            last_seen_ms: device.last_seen_ms,
            online: cx.live.is_open(&device.device),
            mailbox_entries: device.mailbox_entries,
            mailbox_bytes: device.mailbox_bytes,
        })
        .collect();
    Ok(UserDetail {
        summary: summary(user, &usage, &self_peer),
        devices,
        media_uploads: usage.media_uploads,
        mailbox_quota_entries: cx.quotas.mailbox_entries,
        mailbox_quota_bytes: cx.quotas.mailbox_bytes,
        media_quota_bytes: cx.quotas.media_bytes,
        outbox_quota_entries: cx.quotas.outbox_entries,
    })
}
