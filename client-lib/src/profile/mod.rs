//! Profiles: setting ours (sealed under our profile key, stored at our home relay, the key
//! shared over Olm with contacts and our other devices), rotating the key when a contact is
//! removed, and fetching contacts' profiles when their key says a newer version is out.

use std::path::Path;

use tidings_keys::{ProfileKey, profile::open_profile, profile::seal_profile};
use tidings_protocol::{
    ErrorCode, UserId,
    client::{Request, Response},
    profile::{MAX_PROFILE_ABOUT_BYTES, MAX_PROFILE_NAME_BYTES, Profile, SealedProfile},
};

use crate::{
    calls::ClientCall,
    client::Client,
    connection::Connection,
    error::ClientError,
    session::Session,
    store::profiles::{KnownProfile, OwnProfile},
};

/// What `profile set` changes; `None` keeps the field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new about text.
    pub about: Option<String>,
    /// A new picture (uploaded through the media path).
    pub picture: Option<std::path::PathBuf>,
}

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

/// Why a profile could not be set or read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileOpError {
    /// The name is longer than [`MAX_PROFILE_NAME_BYTES`].
    #[error("a profile name is at most {MAX_PROFILE_NAME_BYTES} bytes")]
    NameTooLong,
    /// The about text is longer than [`MAX_PROFILE_ABOUT_BYTES`].
    #[error("an about text is at most {MAX_PROFILE_ABOUT_BYTES} bytes")]
    AboutTooLong,
    /// The picture is not an image file.
    #[error("the picture must be an image (jpeg, png, gif or webp)")]
    NotAnImage,
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] tidings_keys::ProfileError),
}

impl Client {
    /// Changes our profile: the next version, sealed under our profile key (made on the first
    /// set), stored at our home relay, and the key sent to every contact and our other
    /// devices (their notice that a newer version is out). A picture is uploaded first.
    pub async fn set_profile(&self, update: ProfileUpdate) -> Result<Profile, ClientError> {
        if update
            .name
            .as_ref()
            .is_some_and(|name| name.len() > MAX_PROFILE_NAME_BYTES)
        {
            return Err(ProfileOpError::NameTooLong.into());
        }
        if update
            .about
            .as_ref()
            .is_some_and(|about| about.len() > MAX_PROFILE_ABOUT_BYTES)
        {
            return Err(ProfileOpError::AboutTooLong.into());
        }
        let picture = match &update.picture {
            Some(path) => Some(self.upload_picture(path).await?),
            None => None,
        };
        let mut session = self.connect().await?;
        // Another device of ours may have set a newer one: start from it.
        if let Err(error) = fetch_profile(self, session.connection(), self.user_id()).await {
            tracing::debug!(%error, "our profile as the relay holds it was not fetched");
        }
        let own = self.store().own_profile()?;
        let (key, previous) = match own {
            Some(own) => (own.key.clone(), own.profile),
            None => (
                ProfileKey::generate().to_bytes(),
                Profile {
                    version: 0,
                    name: String::new(),
                    about: String::new(),
                    picture: None,
                },
            ),
        };
        let profile = Profile {
            version: previous.version + 1,
            name: update.name.unwrap_or(previous.name),
            about: update.about.unwrap_or(previous.about),
            picture: picture.or(previous.picture),
        };
        self.store().set_own_profile(&OwnProfile {
            key,
            profile: profile.clone(),
            uploaded: false,
        })?;
        let flushed = session.flush().await;
        let own = self.store().own_profile()?;
        session.close().await;
        flushed?;
        match own {
            Some(own) if own.uploaded => Ok(own.profile),
            _ => Err(ClientError::Refused(tidings_protocol::ErrorAnswer::new(
                ErrorCode::Unavailable,
                "the relay did not take the profile yet; it is sent again on the next connection",
            ))),
        }
    }

    async fn upload_picture(
        &self,
        path: &Path,
    ) -> Result<tidings_protocol::media::MediaMessage, ClientError> {
        let (kind, _) = crate::media::kind_of(path);
        if kind != tidings_protocol::media::MediaKind::Image {
            return Err(ProfileOpError::NotAnImage.into());
        }
        let (mut media, _) = self.upload_file(path, None, &mut |_| {}).await?;
        media.thumbnail = None;
        media.caption = None;
        Ok(media)
    }

    /// Our profile as this device holds it.
    pub fn own_profile(&self) -> Result<Option<Profile>, ClientError> {
        Ok(self.store().own_profile()?.map(|own| own.profile))
    }

    /// The profile of `who` (a contact name or user id) as held here, after fetching a
    /// newer one if their key says one is out. Strangers' profiles cannot be opened: we hold
    /// no key of theirs.
    pub async fn profile(&self, who: &str) -> Result<Option<Profile>, ClientError> {
        let user = self.resolve(who)?;
        if user == self.user_id() {
            return self.own_profile();
        }
        if self
            .store()
            .known_profile(&user)?
            .is_some_and(|known| known.is_due())
        {
            let session = self.connect().await?;
            let fetched = fetch_profile(self, session.connection(), user).await;
            session.close().await;
            if let Err(error) = fetched {
                tracing::info!(%user, %error, "a newer profile could not be fetched");
            }
        }
        Ok(self
            .store()
            .known_profile(&user)?
            .and_then(|known| known.profile))
    }
}

impl Session {
    /// Fetches `user`'s newest profile from their home relay and keeps it if it opens with
    /// the key they shared and is newer than the one held.
    pub async fn fetch_profile(&self, user: UserId) -> Result<Option<Profile>, ClientError> {
        fetch_profile(self.client(), self.connection(), user).await
    }
}

/// See [`Session::fetch_profile`]. Nothing is asked for a user whose key we do not hold.
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
