//! Profiles: setting ours (sealed under our profile key, stored at our home relay, the key
//! shared over Olm with contacts and our other devices), rotating the key when a contact is
//! removed, and fetching contacts' profiles when their key says a newer version is out.

pub(crate) mod error;
pub(crate) mod sync;

use std::path::Path;

use tidings_keys::ProfileKey;
use tidings_protocol::{
    ErrorCode, UserId,
    profile::{MAX_PROFILE_ABOUT_BYTES, MAX_PROFILE_NAME_BYTES, Profile},
};

pub use self::error::ProfileOpError;
use self::sync::fetch_profile;
pub use self::sync::{GetProfile, PutProfile};
use crate::{client::Client, error::ClientError, session::Session, store::profiles::OwnProfile};

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

    /// Saves the picture of `who`'s profile (a contact name or user id; ours if `None`) into
    /// `path` (a file, or a directory: the picture's own name inside it), downloaded and
    /// checked as a received photo is; where it went, or `None` if there is no picture.
    pub async fn save_profile_picture(
        &self,
        who: Option<&str>,
        path: &Path,
        progress: impl FnMut(crate::media::Progress) + Send,
    ) -> Result<Option<std::path::PathBuf>, ClientError> {
        let profile = match who {
            None => self.own_profile()?,
            Some(who) => self.profile(who).await?,
        };
        let Some(picture) = profile.and_then(|profile| profile.picture) else {
            return Ok(None);
        };
        let target = if path.is_dir() {
            crate::media::free_name_in(path, &picture.name, &picture.blob.id)
        } else {
            path.to_path_buf()
        };
        self.save_media_to(picture, target, progress)
            .await
            .map(Some)
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
