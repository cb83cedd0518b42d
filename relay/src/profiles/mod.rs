//! Sealed profiles: `PutProfile` from a registered device of the user (kept at their home
//! relay, a higher version replacing), `GetProfile` answered for local users and asked of
//! the home relay for others, and the federation side serving local users' profiles.
//!
//! The relay sees only the user id, the version, the ciphertext's size and the picture's
//! blob reference; the name, about text and picture key are sealed under the profile key.

use std::sync::Arc;

use tidings_protocol::{
    Address, ErrorAnswer, ErrorCode, UserId,
    client::Response,
    federation::{FederationRequest, FederationResponse},
    profile::SealedProfile,
};

use crate::{
    disk::DiskFloor,
    federation::{Directory, HomeAnswer, Links, ask_home},
    ingest::storage_answer,
    store::{PutProfileOutcome, Store},
};

/// Answer to a client request.
type Answer = Result<Response, ErrorAnswer>;

/// What the profile requests of a client session use of the relay.
pub(crate) struct ProfileContext {
    /// The database.
    pub store: Store,
    /// Refuses writes when the disk is nearly full.
    pub disk: Arc<DiskFloor>,
    /// Where users live.
    pub directory: Directory,
    /// Links to other relays.
    pub links: Links,
    /// This relay's peer id, in text.
    pub self_peer: String,
}

/// Whether `user` is homed at this relay (`self_peer`).
async fn homed_here(store: &Store, user: UserId, self_peer: &str) -> Result<bool, ErrorAnswer> {
    Ok(store
        .user(user)
        .await
        .map_err(storage_answer)?
        .is_some_and(|record| record.is_home(self_peer)))
}

/// Stores the sealed profile `me` sent, if it is theirs and newer than the one held;
/// answers with the profile held afterwards.
pub(crate) async fn put(cx: ProfileContext, me: Address, profile: SealedProfile) -> Answer {
    if profile.user != me.user {
        return Err(ErrorAnswer::new(
            ErrorCode::SenderMismatch,
            "the profile is for another user",
        ));
    }
    profile
        .check()
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))?;
    if !homed_here(&cx.store, me.user, &cx.self_peer).await? {
        return Err(ErrorAnswer::new(
            ErrorCode::WrongRelay,
            "your home is another relay",
        ));
    }
    cx.disk.admit()?;
    let outcome = cx
        .store
        .put_profile(me.device, profile.clone())
        .await
        .map_err(storage_answer)?;
    match outcome {
        PutProfileOutcome::Stored => {
            tracing::debug!(user = %me.user, version = profile.version, "profile stored");
            Ok(Response::Profile {
                profile: Some(Box::new(profile)),
            })
        }
        PutProfileOutcome::Stale { held } => Err(ErrorAnswer::new(
            ErrorCode::Malformed,
            format!(
                "stale: profile version {} is not above the held {held}",
                profile.version
            ),
        )),
        PutProfileOutcome::NotRegistered => Err(ErrorAnswer::new(
            ErrorCode::NotRegistered,
            "this device is not registered here",
        )),
    }
}

/// The sealed profile of `user`: held here if they live here, else asked of their home
/// relay (anyone may fetch the ciphertext; only holders of the profile key can open it).
pub(crate) async fn get(cx: ProfileContext, me: Address, user: UserId) -> Answer {
    let profile = if homed_here(&cx.store, user, &cx.self_peer).await? {
        cx.store.profile(user).await.map_err(storage_answer)?
    } else if user == me.user {
        None
    } else {
        remote(&cx, user).await?
    };
    Ok(Response::Profile {
        profile: profile.map(Box::new),
    })
}

/// Asks `user`'s home relay for their sealed profile; the answer must be `user`'s and
/// within bounds.
async fn remote(cx: &ProfileContext, user: UserId) -> Result<Option<SealedProfile>, ErrorAnswer> {
    let request = FederationRequest::Profile { user };
    match ask_home(&cx.directory, &cx.links, user, request).await? {
        HomeAnswer::Local | HomeAnswer::Remote(FederationResponse::Profile(None)) => Ok(None),
        HomeAnswer::Remote(FederationResponse::Profile(Some(profile)))
            if profile.user == user && profile.check().is_ok() =>
        {
            Ok(Some(*profile))
        }
        HomeAnswer::Remote(_) => Err(ErrorAnswer::new(
            ErrorCode::Malformed,
            "the home relay answered with something else than the user's sealed profile",
        )),
    }
}

/// Another relay asks for the profile of `user`: answered only if they live here; if not
/// (they moved, or never lived here), the asker is told to look for their home again.
pub(crate) async fn serve(
    store: &Store,
    self_peer: &str,
    user: UserId,
) -> Result<FederationResponse, ErrorAnswer> {
    if !homed_here(store, user, self_peer).await? {
        return Err(ErrorAnswer::new(
            ErrorCode::WrongRelay,
            format!("{user} is not homed at this relay"),
        ));
    }
    let profile = store.profile(user).await.map_err(storage_answer)?;
    Ok(FederationResponse::Profile(profile.map(Box::new)))
}
