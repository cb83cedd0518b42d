//! `users suspend` and `users resume`: refuse a user's sessions and new mail, or take them
//! again. The mark is a store row, so it holds across restarts.

use super::{AdminContext, protocol::AdminError, replies::UserChange};
use crate::store::SuspendOutcome;

/// Suspends (`suspend`) or resumes the user `text` names.
pub(super) async fn handle(
    cx: &AdminContext,
    text: &str,
    suspend: bool,
) -> Result<UserChange, AdminError> {
    let user = super::users::parse_user(text)?;
    let outcome = cx
        .store
        .set_suspended(user, suspend)
        .await
        .map_err(super::storage)?;
    let mut change = UserChange {
        user: user.to_string(),
        ..UserChange::default()
    };
    match outcome {
        SuspendOutcome::UnknownUser => return Err(AdminError::UnknownUser(user.to_string())),
        SuspendOutcome::NotHome => return Err(AdminError::NotHome(user.to_string())),
        SuspendOutcome::Unchanged => {}
        SuspendOutcome::Changed(devices) => {
            change.changed = true;
            // Committed first: a session that starts from now on reads the mark and is
            // refused; one already open is ended here.
            if suspend {
                change.sessions_ended = cx.live.end_by_operator(&devices, false) as u64;
            }
            tracing::info!(%user, suspend, sessions = change.sessions_ended, "user suspension changed");
        }
    }
    Ok(change)
}
