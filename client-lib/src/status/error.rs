//! Why a status could not be posted or shown (apart from the rest of the module, so the
//! crate's error type can name it without an import circle).

use tidings_protocol::status::MAX_STATUS_AUDIENCE;

/// Why a status could not be posted or shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The audience is empty (no contacts, or all excepted).
    #[error("nobody to show the status to")]
    NoAudience,
    /// The audience is larger than a status may have.
    #[error("a status goes to at most {MAX_STATUS_AUDIENCE} people, not {0}")]
    AudienceTooLarge(usize),
    /// The text is empty.
    #[error("a status needs some text")]
    Empty,
    /// The file is neither a picture nor a video.
    #[error("a status shows a picture or a video (jpeg, png, gif, webp, mp4, ...), not {0}")]
    NotPictureOrVideo(String),
}
