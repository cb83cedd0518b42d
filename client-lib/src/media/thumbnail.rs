//! Thumbnails of JPEG and PNG images, made on the sender's device (blocking): a small JPEG
//! that fits a media message, or none when the image cannot be read within bounds.

use std::{
    io::{BufReader, Cursor},
    path::Path,
};

use image::{ImageReader, Limits, codecs::jpeg::JpegEncoder};
use tidings_protocol::media::MAX_THUMBNAIL_BYTES;

use crate::runtime::files::SyncFile;

/// The longest side of a thumbnail, in pixels.
const THUMBNAIL_SIDE: u32 = 160;

/// Widest or tallest image a thumbnail is made of (larger: no thumbnail).
const MAX_SOURCE_SIDE: u32 = 16_384;

/// Most memory decoding one image may take (an image that claims more gets no thumbnail).
const MAX_DECODE_BYTES: u64 = 256 << 20;

/// JPEG qualities tried, best first, until the thumbnail fits [`MAX_THUMBNAIL_BYTES`].
const QUALITIES: [u8; 3] = [75, 50, 30];

/// A JPEG thumbnail of the image in `file` (at `path`), or `None` when it is not a JPEG or
/// PNG image this device can read within its bounds (the file is sent all the same).
pub fn thumbnail(file: SyncFile, path: &Path) -> Option<Vec<u8>> {
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .ok()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = match reader.decode() {
        Ok(image) => image,
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "no thumbnail");
            return None;
        }
    };
    let small = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8();
    QUALITIES.iter().find_map(|quality| {
        let mut out = Cursor::new(Vec::new());
        small
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, *quality))
            .ok()?;
        let bytes = out.into_inner();
        (bytes.len() <= MAX_THUMBNAIL_BYTES).then_some(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_gets_a_small_jpeg_thumbnail_and_other_bytes_get_none() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("big.png");
        let image = image::RgbImage::from_fn(1200, 800, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        image.save(&png).unwrap();
        let thumb = thumbnail(std::fs::File::open(&png).unwrap(), &png).unwrap();
        assert!(thumb.len() <= MAX_THUMBNAIL_BYTES);
        let decoded = image::load_from_memory(&thumb).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (160, 107));

        let text = dir.path().join("notes.png");
        std::fs::write(&text, b"not an image at all").unwrap();
        assert_eq!(thumbnail(std::fs::File::open(&text).unwrap(), &text), None);
    }
}
