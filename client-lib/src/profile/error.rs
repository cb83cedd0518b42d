//! Why a profile could not be set, sealed or opened.

use tidings_protocol::profile::{MAX_PROFILE_ABOUT_BYTES, MAX_PROFILE_NAME_BYTES};

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
