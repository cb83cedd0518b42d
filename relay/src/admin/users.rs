//! `users list` and `users show`: who is registered here and what they hold.

use serde::{Deserialize, Serialize};
use tidings_protocol::UserId;

use super::{
    AdminContext,
    protocol::{AdminError, MAX_LISTED_DEVICES, MAX_LISTED_USERS},
};
use crate::store::UserUsage;

/// One user in `users list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The user id, as `tidings` prints it.
    pub user: String,
    /// When their first device registered here (ms since the epoch).
    pub registered_at_ms: u64,
    /// Whether their home is this relay (false: they moved away, their mail is handed on).
    pub home_here: bool,
    /// When the operator suspended them, if they are suspended.
    pub suspended_at_ms: Option<u64>,
    /// Devices registered here.
    pub devices: u64,
    /// Entries waiting in their devices' mailboxes.
    pub mailbox_entries: u64,
    /// Their bytes.
    pub mailbox_bytes: u64,
    /// Their envelopes waiting in the outbox.
    pub outbox_entries: u64,
    /// Media bytes charged to them.
    pub media_bytes: u64,
    /// When a device of theirs last ended a session (None: never, or one is online).
    pub last_seen_ms: Option<u64>,
}

/// The answer to `users list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    /// The users, at most [`MAX_LISTED_USERS`].
    pub users: Vec<UserSummary>,
    /// Whether more users are registered than listed.
    pub truncated: bool,
}

/// One device in `users show`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetail {
    /// The device id.
    pub device: String,
    /// When it registered here.
    pub registered_at_ms: u64,
    /// When its last subscribed session ended.
    pub last_seen_ms: Option<u64>,
    /// Whether it has a session open now.
    pub online: bool,
    /// Entries waiting for it.
    pub mailbox_entries: u64,
    /// Their bytes.
    pub mailbox_bytes: u64,
}

/// The answer to `users show USER`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetail {
    /// The totals, as in the list.
    pub summary: UserSummary,
    /// Each device, at most [`MAX_LISTED_DEVICES`].
    pub devices: Vec<DeviceDetail>,
    /// Uploads in progress.
    pub media_uploads: u64,
    /// The mailbox quota of each device: entries (`limits.mailbox_max_envelopes`).
    pub mailbox_quota_entries: u64,
    /// The mailbox quota of each device: bytes (`limits.mailbox_max_bytes`).
    pub mailbox_quota_bytes: u64,
    /// The account's media quota (`blobs.user_quota_bytes`).
    pub media_quota_bytes: u64,
    /// The account's share of the outbox (`limits.outbox_max_per_user`).
    pub outbox_quota_entries: u64,
}

/// What suspend, resume or remove did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChange {
    /// The user.
    pub user: String,
    /// Whether anything changed (false: it already was so).
    pub changed: bool,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Mailbox entries deleted (remove).
    pub mailbox_entries_deleted: u64,
    /// Media blobs deleted (remove).
    pub media_blobs_deleted: u64,
}

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
