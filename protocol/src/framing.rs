//! Length-prefixed frames over any async byte stream: a big-endian `u32` length, then CBOR.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::Serialize;

use crate::{codec, limits::MAX_FRAME_BYTES};

/// A read buffer bigger than this is released after use, so idle streams stay small.
const KEEP_BUFFER_BYTES: usize = 16 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The transport failed or closed in the middle of a frame.
    #[error("stream I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix announces more than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Reads one frame into `buf` (replacing its contents). Returns `Ok(false)` on a clean end of
/// stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<bool, FrameError> {
    let mut prefix = [0u8; 4];
    // A clean close is only allowed before the first byte of the prefix.
    let first = reader.read(&mut prefix[..1]).await?;
    if first == 0 {
        return Ok(false);
    }
    reader.read_exact(&mut prefix[1..]).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    if buf.capacity() > KEEP_BUFFER_BYTES && len <= KEEP_BUFFER_BYTES {
        *buf = Vec::new();
    }
    buf.clear();
    // The buffer grows with the bytes that arrive, not with the length announced: a peer that
    // announces a large frame and sends nothing more must not make us hold that much.
    buf.reserve(len.min(KEEP_BUFFER_BYTES));
    let read = (&mut *reader).take(len as u64).read_to_end(buf).await?;
    if read < len {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(true)
}

/// Reads one frame, taking and giving back the reader and buffer: a future that owns its
/// state, so a `select!` loop can keep it across iterations and never drop a frame half read.
pub async fn read_frame_owned<R: AsyncRead + Unpin>(
    mut reader: R,
    mut buf: Vec<u8>,
) -> (R, Vec<u8>, Result<bool, FrameError>) {
    let result = read_frame(&mut reader, &mut buf).await;
    (reader, buf, result)
}

/// Appends one frame holding the CBOR of `value` to `out`.
pub fn encode_frame<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    codec::encode_into(value, out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes pre-encoded frames and flushes.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: &[u8],
) -> std::io::Result<()> {
    writer.write_all(frames).await?;
    writer.flush().await
}

/// Encodes and writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    encode_frame(value, &mut out);
    write_frames(writer, &out).await
}

/// The id of a request frame whose body does not decode (a newer peer's request kind, or a
/// malformed body), if the frame says that much: client and federation request frames both
/// start with it, so the receiver can answer that request with an error and keep the stream.
pub fn request_id(frame: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    enum Probe {
        #[serde(rename = "q")]
        Request {
            #[serde(rename = "i")]
            id: u64,
        },
    }
    match codec::decode::<Probe>(frame, MAX_FRAME_BYTES) {
        Ok(Probe::Request { id }) => Some(id),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_prefixes_are_refused() {
        futures::executor::block_on(async {
            let mut wire = Vec::new();
            encode_frame(&"hello", &mut wire);
            encode_frame(&42u32, &mut wire);
            let mut reader = wire.as_slice();
            let mut buf = Vec::new();
            assert!(read_frame(&mut reader, &mut buf).await.unwrap());
            assert_eq!(codec::decode::<String>(&buf, 64).unwrap(), "hello");
            assert!(read_frame(&mut reader, &mut buf).await.unwrap());
            assert_eq!(codec::decode::<u32>(&buf, 64).unwrap(), 42);
            assert!(!read_frame(&mut reader, &mut buf).await.unwrap());

            let huge = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
            let mut reader = &huge[..];
            assert!(matches!(
                read_frame(&mut reader, &mut buf).await,
                Err(FrameError::TooLarge { .. })
            ));

            let truncated = [0u8, 0, 0, 9, 1, 2];
            let mut reader = &truncated[..];
            assert!(matches!(
                read_frame(&mut reader, &mut buf).await,
                Err(FrameError::Io(_))
            ));
        });
    }
}
