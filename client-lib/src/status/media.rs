//! Pictures and videos in statuses: uploaded through the media path (sealed under a fresh
//! key, the blob at the home relay), the reference and key sealed inside the status, and a
//! viewer's copy saved into the downloads dir of the data dir.

use std::path::{Path, PathBuf};

use tidings_protocol::{
    limits::MAX_TEXT_BYTES,
    media::{MediaKind, MediaMessage},
    status::Clock,
};

use super::{Audience, PostedStatus, StatusError};
use crate::{client::Client, error::ClientError, session::Session, store::status::ReceivedStatus};

/// Where viewed status pictures and videos are saved, inside the data dir.
pub const DOWNLOADS_DIR: &str = "downloads";

/// Longest part of a media file name kept in a saved file's name.
const MAX_SAVED_NAME_CHARS: usize = 100;

impl Client {
    /// [`Session::post_status_file`] on a connection of its own.
    pub async fn post_status_file(
        &self,
        clock: &Clock,
        path: &Path,
        caption: &str,
        audience: &Audience,
    ) -> Result<PostedStatus, ClientError> {
        let mut session = self.connect().await?;
        let posted = session
            .post_status_file(clock, path, caption, audience)
            .await;
        session.close().await;
        posted
    }

    /// Saves the picture or video of a viewed status into the downloads dir (downloaded
    /// once: a second call finds the file there); None for a text status.
    pub async fn save_status_media(
        &self,
        status: &ReceivedStatus,
    ) -> Result<Option<PathBuf>, ClientError> {
        let Some(media) = status.media.as_deref().cloned() else {
            return Ok(None);
        };
        let dir = self.data_dir().join(DOWNLOADS_DIR);
        let target = dir.join(saved_name(status, &media));
        if let Ok(Some(_)) = crate::runtime::files::size_of(&target).await {
            return Ok(Some(target));
        }
        crate::runtime::files::create_dir_all(&dir)
            .await
            .map_err(crate::media::MediaError::io(&dir))?;
        self.save_media_to(media, target, |_| {}).await.map(Some)
    }
}

impl Session {
    /// Posts the picture or video at `path` as a status with `caption` (may be empty): the
    /// file is sealed and uploaded to the home relay first, as `send --file` does.
    pub async fn post_status_file(
        &mut self,
        clock: &Clock,
        path: &Path,
        caption: &str,
        audience: &Audience,
    ) -> Result<PostedStatus, ClientError> {
        let (kind, mime) = crate::media::kind_of(path);
        if !matches!(kind, MediaKind::Image | MediaKind::Video) {
            return Err(StatusError::NotPictureOrVideo(mime.to_string()).into());
        }
        if caption.len() > MAX_TEXT_BYTES {
            return Err(ClientError::TextTooLong(caption.len()));
        }
        let client = self.client().clone();
        // Resolved first: a bad audience uploads nothing.
        client.status_audience(audience)?;
        let (mut media, _) = client.upload_file(path, None, &mut |_| {}).await?;
        media.caption = None;
        self.post_sealed_status(
            clock,
            caption,
            Some(media),
            audience,
            tidings_protocol::status::STATUS_LIFETIME_MS,
        )
        .await
    }
}

/// `status-<id>-<name>`: one file per status, whatever the poster named it.
fn saved_name(status: &ReceivedStatus, media: &MediaMessage) -> String {
    let id = status.id.to_string();
    let short = id.get(..12).unwrap_or(&id);
    let name: String = media
        .name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '/' | '\\'))
        .take(MAX_SAVED_NAME_CHARS)
        .collect();
    let name = name.trim_start_matches('.');
    if name.is_empty() {
        format!("status-{short}")
    } else {
        format!("status-{short}-{name}")
    }
}
