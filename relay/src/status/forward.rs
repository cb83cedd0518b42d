//! Statuses across relays: the poster's relay forwards a status once to each relay homing
//! some of its audience (naming only those users), and takes statuses other relays forward
//! for their posters.

use std::{collections::HashMap, time::Duration};

use libp2p::PeerId;
use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode, UserId,
    federation::{FederationRequest, FederationResponse},
    status::StatusPost,
};

use super::StatusBoard;
use crate::federation::{Directory, Home, HomeCheck, Links, LookupBudget, Remote};

/// Attempts to hand a status to one remote relay before giving up on it (it expires anyway).
const FORWARD_ATTEMPTS: u32 = 5;

/// The first pause between attempts (doubling each time).
const FORWARD_PAUSE: Duration = Duration::from_millis(500);

/// Forwards `post` (stored here already) to the home relays of its remote audience, one
/// request per relay, in the background.
pub(crate) fn spawn_fan_out(
    board: StatusBoard,
    directory: Directory,
    links: Links,
    poster: Address,
    post: StatusPost,
) {
    tokio::spawn(async move {
        let mut by_relay: HashMap<PeerId, (Remote, Vec<UserId>)> = HashMap::new();
        let budget = LookupBudget::unbounded();
        for user in post.audience.iter().copied() {
            match directory.resolve_within(user, &budget).await {
                Ok(Home::Remote(remote)) => {
                    by_relay
                        .entry(remote.peer)
                        .or_insert_with(|| (remote, Vec::new()))
                        .1
                        .push(user);
                }
                Ok(Home::Local) => {}
                Ok(Home::Unknown) => tracing::info!(%user, "no home known for a status viewer"),
                Err(error) => tracing::warn!(%error, "resolving a status viewer"),
            }
        }
        for (_, (remote, users)) in by_relay {
            let Ok(audience) = BoundedVec::new(users) else {
                continue;
            };
            let request = FederationRequest::StatusForward {
                poster,
                post: Box::new(StatusPost {
                    audience,
                    ..post.clone()
                }),
            };
            let (links, clock) = (links.clone(), board.clock.clone());
            let expires_at_ms = post.expires_at_ms;
            tokio::spawn(async move {
                let mut pause = FORWARD_PAUSE;
                for attempt in 1..=FORWARD_ATTEMPTS {
                    match links.request(&remote, request.clone()).await {
                        Ok(FederationResponse::StatusStored(_)) => return,
                        Ok(other) => {
                            tracing::warn!(peer = %remote.peer, ?other, "odd answer to a status");
                            return;
                        }
                        Err(error) => {
                            tracing::debug!(peer = %remote.peer, %error, attempt, "status forward failed")
                        }
                    }
                    if clock.now_ms() >= expires_at_ms {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                tracing::info!(peer = %remote.peer, "gave up forwarding a status");
            });
        }
    });
}

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
    let new = board.store(poster, post).await?;
    Ok(FederationResponse::StatusStored(new))
}
