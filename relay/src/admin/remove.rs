//! `users remove`: delete a user and everything the relay holds for them, then what is
//! outside the store (sessions, push schedule, DHT record, blob files).

use super::{AdminContext, protocol::AdminError, replies::UserChange};
use crate::store::RemoveOutcome;

/// Removes the user `text` names.
pub(super) async fn handle(cx: &AdminContext, text: &str) -> Result<UserChange, AdminError> {
    let user = super::users::parse_user(text)?;
    let removal = match cx.store.remove_user(user).await.map_err(super::storage)? {
        RemoveOutcome::Removed(removal) => removal,
        RemoveOutcome::UnknownUser => return Err(AdminError::UnknownUser(user.to_string())),
        RemoveOutcome::NotHome => return Err(AdminError::NotHome(user.to_string())),
    };
    let sessions_ended = cx.live.end_by_operator(&removal.devices, true) as u64;
    cx.push.forget(&removal.devices);
    cx.network.forget_home(user).await;
    for id in &removal.uploads {
        if let Err(error) = cx.blobs.drop_upload(user, *id).await {
            tracing::warn!(%error, "a removed user's partial upload was not deleted");
        }
    }
    // Collectable now (no reference, no grace): deleted unless a new reference came since.
    let media_blobs_deleted = match cx.blobs.drop_blobs(removal.orphaned_blobs, Some(0)).await {
        Ok(deleted) => deleted as u64,
        Err(error) => {
            tracing::warn!(%error, "a removed user's blobs were not deleted; garbage collection will");
            0
        }
    };
    tracing::info!(
        %user,
        devices = removal.devices.len(),
        sessions_ended,
        mailbox_entries = removal.mailbox_entries,
        media_blobs_deleted,
        "user removed"
    );
    Ok(UserChange {
        user: user.to_string(),
        changed: true,
        sessions_ended,
        mailbox_entries_deleted: removal.mailbox_entries,
        media_blobs_deleted,
    })
}
