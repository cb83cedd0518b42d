//! The CLI side of the admin socket: connect, send one request, read its answer.

use std::{path::Path, time::Duration};

use tokio::net::UnixStream;

use super::{
    ADMIN_SOCKET,
    protocol::{self, Answer, FrameError, MAX_ANSWER_BYTES, Request, RequestFrame},
};

/// How long the CLI waits for the relay's answer (a status over a large store reads it all).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the CLI waits for a backup to be written (it copies every file of the relay).
const BACKUP_ANSWER_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Requests whose answers take long.
enum RequestKind {
    Backup,
    Other,
}

/// Why the CLI got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No relay serves the data dir.
    #[error("no relay is running on {0} (no admin socket)")]
    NotRunning(String),
    /// The socket exists but refused the connection (a relay that crashed left it).
    #[error(
        "no relay is running on {0} (its admin socket does not answer; a crashed relay left it)"
    )]
    Stale(String),
    /// The socket belongs to another user.
    #[error("{0}: permission denied; run this as the user that runs the relay")]
    PermissionDenied(String),
    /// The socket failed.
    #[error("admin socket: {0}")]
    Io(#[from] std::io::Error),
    /// The answer frame was too large.
    #[error("admin socket: {0}")]
    Frame(#[from] FrameError),
    /// The answer did not decode.
    #[error("the relay's answer did not decode: {0}")]
    Decode(#[from] tidings_protocol::codec::DecodeError),
    /// The relay closed the connection without answering.
    #[error("the relay closed the admin connection without answering")]
    Closed,
    /// The relay did not answer in time.
    #[error("the relay did not answer within {ANSWER_TIMEOUT:?}")]
    Timeout,
}

/// Sends `request` to the relay running on `data_dir` and returns its answer.
pub async fn request(data_dir: &Path, request: Request) -> Result<Answer, ClientError> {
    let request_kind = match request {
        Request::Backup { .. } => RequestKind::Backup,
        _ => RequestKind::Other,
    };
    let path = data_dir.join(ADMIN_SOCKET);
    let shown = data_dir.display().to_string();
    let mut stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(error) => {
            return Err(match error.kind() {
                std::io::ErrorKind::NotFound => ClientError::NotRunning(shown),
                std::io::ErrorKind::ConnectionRefused => ClientError::Stale(shown),
                std::io::ErrorKind::PermissionDenied => {
                    ClientError::PermissionDenied(path.display().to_string())
                }
                _ => ClientError::Io(error),
            });
        }
    };
    let exchange = async {
        protocol::write_frame(&mut stream, &RequestFrame::new(request)).await?;
        let body = protocol::read_frame(&mut stream, MAX_ANSWER_BYTES)
            .await?
            .ok_or(ClientError::Closed)?;
        Ok::<_, ClientError>(protocol::decode_answer(&body)?)
    };
    let timeout = match request_kind {
        RequestKind::Backup => BACKUP_ANSWER_TIMEOUT,
        RequestKind::Other => ANSWER_TIMEOUT,
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ClientError::Timeout)?
}
