//! The admin socket's wire format: length-prefixed CBOR frames carrying a versioned request
//! and a typed answer, with bounded sizes on both sides.
//!
//! A frame is a big-endian `u32` length, then that many bytes of CBOR. The client sends one
//! [`RequestFrame`] and reads one [`Answer`]; a connection may carry several in turn.
//! Adding a request: a variant at the END of [`Request`], its reply at the END of [`Reply`],
//! and one handler file under `relay/src/admin/` called from `server.rs::handle`.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::replies::{StatusReport, UserChange, UserDetail, UserList};

/// The protocol version every request names; a relay answers any other with
/// [`AdminError::Version`].
pub const ADMIN_VERSION: &str = "admin/1";

/// Largest request frame the relay reads (requests are a handful of small fields).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest answer frame the CLI reads (a user list of [`super::replies::MAX_LISTED_USERS`]
/// rows fits).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// One request with the version the client speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// [`ADMIN_VERSION`].
    #[serde(rename = "v")]
    pub version: String,
    /// What the client asks.
    #[serde(rename = "q")]
    pub request: Request,
}

impl RequestFrame {
    /// `request` under this build's [`ADMIN_VERSION`].
    pub fn new(request: Request) -> Self {
        Self {
            version: ADMIN_VERSION.to_string(),
            request,
        }
    }
}

/// What an operator asks the running relay. New kinds go at the END.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The relay's state in numbers (`tidings-relay status`).
    #[serde(rename = "status")]
    Status,
    /// Every user registered here (`tidings-relay users list`).
    #[serde(rename = "users")]
    ListUsers,
    /// One user in detail (`tidings-relay users show USER`); the user id as `tidings` prints it.
    #[serde(rename = "user")]
    ShowUser(String),
    /// Refuse a user's sessions and new mail until resumed.
    #[serde(rename = "suspend")]
    SuspendUser(String),
    /// Undo [`Request::SuspendUser`].
    #[serde(rename = "resume")]
    ResumeUser(String),
    /// Delete a user and everything the relay holds for them.
    #[serde(rename = "remove")]
    RemoveUser(String),
    /// Write an online backup into this directory (absolute, new or empty).
    #[serde(rename = "backup")]
    Backup {
        /// The target directory.
        to: String,
    },
}

/// The relay's answer to one request.
pub type Answer = Result<Reply, AdminError>;

/// What a successful request returns. New kinds go at the END.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// For [`Request::Status`].
    #[serde(rename = "status")]
    Status(Box<StatusReport>),
    /// For [`Request::ListUsers`].
    #[serde(rename = "users")]
    Users(UserList),
    /// For [`Request::ShowUser`].
    #[serde(rename = "user")]
    User(Box<UserDetail>),
    /// For suspend, resume and remove: what changed.
    #[serde(rename = "done")]
    Done(UserChange),
    /// For [`Request::Backup`].
    #[serde(rename = "backup")]
    Backup(crate::backup::BackupSummary),
}

/// Why the relay refused an admin request; every variant is something the CLI can say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AdminError {
    /// The client speaks another protocol version.
    #[error("the relay speaks {relay}, this tidings-relay speaks {client}; use the same version")]
    #[serde(rename = "version")]
    Version {
        /// What the relay speaks.
        relay: String,
        /// What the request named.
        client: String,
    },
    /// The request frame did not decode.
    #[error("malformed request: {0}")]
    #[serde(rename = "malformed")]
    Malformed(String),
    /// The request frame is larger than [`MAX_REQUEST_BYTES`].
    #[error("request of {len} bytes exceeds the limit of {max}")]
    #[serde(rename = "too_large")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The text given is not a user id.
    #[error("{0:?} is not a user id (a base58 id as `tidings` prints it)")]
    #[serde(rename = "bad_user_id")]
    BadUserId(String),
    /// No user with that id is registered here.
    #[error("no user {0} is registered on this relay")]
    #[serde(rename = "unknown_user")]
    UnknownUser(String),
    /// The user moved to another relay; only their home relay manages them.
    #[error("user {0} moved to another relay")]
    #[serde(rename = "not_home")]
    NotHome(String),
    /// The store failed.
    #[error("storage error: {0}")]
    #[serde(rename = "storage")]
    Storage(String),
    /// The relay is stopping.
    #[error("the relay is shutting down")]
    #[serde(rename = "unavailable")]
    Unavailable,
    /// The backup could not be written (the reason names the file or directory).
    #[error("backup failed: {0}")]
    #[serde(rename = "backup")]
    Backup(String),
    /// An error code from a newer relay.
    #[error("the relay refused the request (an error this version does not know)")]
    #[serde(other, rename = "unknown")]
    Unknown,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed or closed mid-frame.
    #[error("admin socket I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Reads one frame of at most `max` bytes; `None` on a clean end between frames. The buffer
/// grows with the bytes that arrive, never with the length announced.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    let first = reader.read(&mut prefix[..1]).await?;
    if first == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut prefix[1..]).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = Vec::with_capacity(len.min(MAX_REQUEST_BYTES));
    let read = reader.take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(Some(body))
}

/// Writes `value` as one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut out = vec![0u8; 4];
    tidings_protocol::codec::encode_into(value, &mut out);
    let len = u32::try_from(out.len() - 4).map_err(|_| std::io::ErrorKind::InvalidData)?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    writer.write_all(&out).await?;
    writer.flush().await
}

/// Decodes a request frame's body (bounded by [`MAX_REQUEST_BYTES`]).
pub fn decode_request(body: &[u8]) -> Result<Request, AdminError> {
    let frame: RequestFrame = tidings_protocol::codec::decode(body, MAX_REQUEST_BYTES)
        .map_err(|error| AdminError::Malformed(error.to_string()))?;
    if frame.version != ADMIN_VERSION {
        return Err(AdminError::Version {
            relay: ADMIN_VERSION.to_string(),
            client: frame.version,
        });
    }
    Ok(frame.request)
}

/// Decodes an answer frame's body (bounded by [`MAX_ANSWER_BYTES`]).
pub fn decode_answer(body: &[u8]) -> Result<Answer, tidings_protocol::codec::DecodeError> {
    tidings_protocol::codec::decode(body, MAX_ANSWER_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_other_versions_are_refused() {
        let frame = RequestFrame::new(Request::ShowUser("abc".into()));
        let bytes = tidings_protocol::codec::encode(&frame);
        assert_eq!(decode_request(&bytes), Ok(Request::ShowUser("abc".into())));
        let old = RequestFrame {
            version: "admin/0".into(),
            request: Request::Status,
        };
        let bytes = tidings_protocol::codec::encode(&old);
        assert!(matches!(
            decode_request(&bytes),
            Err(AdminError::Version { .. })
        ));
        assert!(matches!(
            decode_request(b"\xff\x00garbage"),
            Err(AdminError::Malformed(_))
        ));
    }

    #[test]
    fn an_unknown_error_from_a_newer_relay_decodes() {
        #[derive(Serialize)]
        enum Newer {
            #[serde(rename = "brand_new")]
            BrandNew,
        }
        let bytes = tidings_protocol::codec::encode(&Newer::BrandNew);
        let decoded: AdminError = tidings_protocol::codec::decode(&bytes, 64).unwrap();
        assert_eq!(decoded, AdminError::Unknown);
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let read = read_frame(&mut input, MAX_REQUEST_BYTES).await;
        assert!(matches!(read, Err(FrameError::TooLarge { .. })));
    }
}
