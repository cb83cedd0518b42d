//! Statuses from other relays: a relay takes a status only from its poster's home relay, and
//! keeps it only for its own users in the audience (the sending side is `forwarder`).

use libp2p::PeerId;
use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode, federation::FederationResponse, status::StatusPost,
};

use super::StatusBoard;
use crate::federation::{Directory, HomeCheck, LookupBudget};

/// Takes a status another relay forwards: it must be the poster's home; only this relay's
/// users in the audience are kept.
pub(crate) async fn take_forwarded(
    board: &StatusBoard,
    directory: &Directory,
    from: PeerId,
    poster: Address,
    mut post: StatusPost,
) -> Result<FederationResponse, ErrorAnswer> {
    let check = directory
        .is_home_of(poster.user, from, &LookupBudget::per_request())
        .await
        .map_err(|_| ErrorAnswer::new(ErrorCode::Storage, "cannot check the poster's home"))?;
    if check != HomeCheck::Home {
        return Err(ErrorAnswer::new(
            ErrorCode::WrongOrigin,
            "a status comes only from its poster's home relay",
        ));
    }
    let mut local = Vec::with_capacity(post.audience.len());
    for user in post.audience.iter() {
        if matches!(directory.is_local(*user).await, Ok(true)) {
            local.push(*user);
        }
    }
    if local.is_empty() {
        return Ok(FederationResponse::StatusStored(false));
    }
    post.audience = BoundedVec::new(local)
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))?;
    let new = board.store(poster, post, Vec::new()).await?;
    Ok(FederationResponse::StatusStored(new))
}
