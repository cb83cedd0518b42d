//! Asking a user's home relay one question on a client's behalf: find the home, send the
//! request, and turn a missing home or a broken link into an answer the client can retry.

use tidings_protocol::{
    ErrorAnswer, ErrorCode, UserId,
    federation::{FederationRequest, FederationResponse},
};

use super::{Directory, Home, LinkError, Links};
use crate::ingest::storage_answer;

/// Where the question went.
pub(crate) enum HomeAnswer {
    /// The user lives here: nobody was asked.
    Local,
    /// Their home relay's answer (refusals come back as `Err` with the home's answer).
    Remote(FederationResponse),
}

/// Asks `user`'s home relay `request`. A home not found yet and an unreachable home are
/// `Unavailable` (and the cached home is dropped, so the next try looks again); a relay
/// that says the user no longer lives there (they moved) makes the home be looked up anew
/// and asked once more; any other refusal is the home relay's own answer.
pub(crate) async fn ask_home(
    directory: &Directory,
    links: &Links,
    user: UserId,
    request: FederationRequest,
) -> Result<HomeAnswer, ErrorAnswer> {
    let mut looked_again = false;
    loop {
        let remote = match directory.resolve(user).await.map_err(storage_answer)? {
            Home::Remote(remote) => remote,
            Home::Local => return Ok(HomeAnswer::Local),
            Home::Unknown => return Err(no_home_yet(user)),
        };
        match links.request(&remote, request.clone()).await {
            Ok(response) => return Ok(HomeAnswer::Remote(response)),
            Err(LinkError::Refused(answer))
                if answer.code == ErrorCode::WrongRelay && !looked_again =>
            {
                tracing::debug!(%user, peer = %remote.peer, "asked a former home; looking again");
                directory.invalidate(&user).await;
                looked_again = true;
            }
            Err(LinkError::Refused(answer)) => return Err(answer),
            Err(error) => {
                directory.invalidate(&user).await;
                return Err(ErrorAnswer::new(
                    ErrorCode::Unavailable,
                    format!("{user}'s home relay: {error}; retry later"),
                ));
            }
        }
    }
}

/// No relay has said it is `user`'s home yet, as far as this relay can see right now. Not
/// final: a relay that just restarted, or is cut off from part of the network, finds no
/// record for users who do exist, so the client keeps what it wanted to send and asks again.
pub(crate) fn no_home_yet(user: UserId) -> ErrorAnswer {
    ErrorAnswer::new(
        ErrorCode::Unavailable,
        format!("no home relay found for {user} yet; retry later"),
    )
}
