//! The profile work a connection does: storing ours at the relay, sharing its key before the
//! outbox goes out (replacing it first if a contact who held it was removed), and fetching a
//! user's newest profile.

use tidings_keys::{
    ProfileKey,
    profile::{open_profile, seal_profile},
};
use tidings_protocol::{
    ErrorCode, UserId,
    client::{Request, Response},
    profile::{Profile, SealedProfile},
};

use super::error::ProfileOpError;
use crate::{
    calls::ClientCall,
    client::Client,
    connection::Connection,
    error::ClientError,
    store::profiles::{KnownProfile, OwnProfile},
};

/// Stores our sealed profile at the home relay.
#[derive(Debug, Clone)]
pub struct PutProfile(pub SealedProfile);

/// Fetches a user's sealed profile.
#[derive(Debug, Clone, Copy)]
pub struct GetProfile(pub UserId);

fn sealed_profile(response: Response) -> Result<Option<SealedProfile>, Response> {
    match response {
        Response::Profile { profile } => Ok(profile.map(|profile| *profile)),
        other => Err(other),
    }
}

impl ClientCall for PutProfile {
    type Answer = Option<SealedProfile>;
    const NAME: &'static str = "put profile";
    fn into_request(self) -> Request {
        Request::PutProfile {
            profile: Box::new(self.0),
        }
    }
    fn answer(response: Response) -> Result<Self::Answer, Response> {
        sealed_profile(response)
    }
}

impl ClientCall for GetProfile {
    type Answer = Option<SealedProfile>;
    const NAME: &'static str = "get profile";
    fn into_request(self) -> Request {
        Request::GetProfile { user: self.0 }
    }
    fn answer(response: Response) -> Result<Self::Answer, Response> {
        sealed_profile(response)
    }
}

/// Fetches `user`'s newest profile from their home relay and keeps it if it opens with the
/// key they shared and is newer than the one held. Nothing is asked for a user whose key we do not hold.
pub(crate) async fn fetch_profile(
    client: &Client,
    connection: &Connection,
    user: UserId,
) -> Result<Option<Profile>, ClientError> {
    let me = client.user_id();
    let known = match client.store().known_profile(&user)? {
        Some(known) => known,
        None if user == me => match client.store().own_profile()? {
            Some(own) => KnownProfile {
                key: own.key,
                key_version: own.profile.version,
                profile: Some(own.profile),
            },
            None => return Ok(None),
        },
        None => return Ok(None),
    };
    let Some(sealed) = connection.call(GetProfile(user)).await? else {
        return Ok(known.profile);
    };
    if sealed.user != user {
        return Err(ClientError::Refused(tidings_protocol::ErrorAnswer::new(
            ErrorCode::Malformed,
            "the relay answered with another user's profile",
        )));
    }
    if known
        .profile
        .as_ref()
        .is_some_and(|held| held.version >= sealed.version)
    {
        return Ok(known.profile);
    }
    let key = ProfileKey::from_slice(&known.key).map_err(ProfileOpError::from)?;
    let profile = open_profile(&key, &sealed).map_err(ProfileOpError::from)?;
    let keep = profile.clone();
    let key_bytes = known.key.clone();
    client
        .blocking(move |inner| inner.store.store_fetched_profile(me, user, key_bytes, keep))
        .await?;
    Ok(Some(profile))
}

/// Before the outbox is sent: replaces the profile key if a contact who held it was
/// removed, stores our profile at the relay if it changed, then queues the key for every
/// contact (and our other devices) lacking this version, so the key never reaches anyone
/// before the profile it opens is at the relay. Problems are logged, never fail the flush.
pub(crate) async fn before_flush(client: &Client, connection: &Connection) {
    if let Err(error) = sync_profile(client, connection).await {
        tracing::info!(%error, "profile not stored or shared yet; tried again on the next flush");
    }
}

async fn sync_profile(client: &Client, connection: &Connection) -> Result<(), ClientError> {
    let store = client.store();
    if store.own_profile()?.is_none() {
        return Ok(());
    }
    if store.profile_key_leaked_to_removed()? {
        let version = store.rotate_profile_key()?;
        tracing::info!(?version, "a contact was removed: new profile key");
    }
    let Some(own) = store.own_profile()? else {
        return Ok(());
    };
    if !own.uploaded {
        upload(client, connection, own).await?;
    }
    let me = client.user_id();
    let shared = client
        .blocking(move |inner| inner.store.share_profile_key(me))
        .await?;
    if shared > 0 {
        tracing::debug!(users = shared, "profile key queued");
    }
    Ok(())
}

/// Seals and stores `own` at the relay; a relay holding a newer version of ours (set on
/// another device) makes this one go above it.
async fn upload(
    client: &Client,
    connection: &Connection,
    mut own: OwnProfile,
) -> Result<(), ClientError> {
    let key = own.profile_key()?;
    let me = client.user_id();
    let sealed = seal_profile(&key, me, &own.profile).map_err(ProfileOpError::from)?;
    match connection.call(PutProfile(sealed)).await {
        Ok(_) => {}
        Err(crate::connection::ConnectionError::Refused(answer))
            if answer.code == ErrorCode::Malformed && answer.detail.starts_with("stale") =>
        {
            let held = connection
                .call(GetProfile(me))
                .await?
                .map_or(0, |held| held.version);
            own.profile.version = held + 1;
            let sealed = seal_profile(&key, me, &own.profile).map_err(ProfileOpError::from)?;
            connection.call(PutProfile(sealed)).await?;
        }
        Err(error) => return Err(error.into()),
    }
    own.uploaded = true;
    client.store().set_own_profile(&own)?;
    Ok(())
}

/// [`fetch_profile`] for a user whose key just came; a failure is logged (the profile stays
/// due and is fetched by `profile show`, or when their next key comes).
pub(crate) async fn fetch_quietly(client: &Client, connection: &Connection, user: UserId) {
    if let Err(error) = fetch_profile(client, connection, user).await {
        tracing::info!(%user, %error, "a newer profile could not be fetched yet");
    }
}
