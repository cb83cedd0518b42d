//! Blob transfers with the home relay over `/tidings/blob/1`: one upload or download per
//! stream, resumed from an offset on a new stream when one is cut, every wait bounded.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures::AsyncWriteExt;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use libp2p_stream::OpenStreamError;
use tidings_protocol::{
    BlobAnswer, BlobData, BlobId, BlobRequest, DecodeError, ErrorAnswer,
    blob::{BLOB_PROTOCOL, MAX_BLOB_DATA_BYTES},
    framing::{FrameError, read_frame, write_frame},
};

use crate::net::{NetError, Network};

/// How long one frame may take to arrive or leave before the stream is given up.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the relay may take to check and store a whole upload after its last byte.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

/// How many streams one transfer opens (the first and the resumptions) before it fails.
pub const TRANSFER_ATTEMPTS: u32 = 5;

/// The pause before the first resumption; it doubles with each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// How far a transfer has come, in ciphertext bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes the relay holds (upload) or this device holds (download).
    pub done: u64,
    /// All of them.
    pub total: u64,
    /// True while the home relay is still fetching the blob from the relay that holds it
    /// (a download's first step): `done` then counts what the home relay has.
    pub relay_fetching: bool,
}

impl Progress {
    /// `done` of `total` bytes moved between this device and its relay.
    pub fn moved(done: u64, total: u64) -> Self {
        Self {
            done,
            total,
            relay_fetching: false,
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransferError {
    /// The relay could not be dialled.
    #[error("cannot reach the relay: {0}")]
    Dial(#[from] NetError),
    /// No blob stream could be opened.
    #[error("cannot open a blob stream to the relay: {0}")]
    Open(Arc<OpenStreamError>),
    /// The stream failed or closed in the middle.
    #[error("blob stream lost: {0}")]
    Stream(Arc<std::io::Error>),
    /// A frame from the relay was too large or did not decode.
    #[error("the relay sent a bad frame: {0}")]
    BadFrame(String),
    /// The relay did not answer or send in time.
    #[error("the relay did not answer within {0:?}")]
    Timeout(Duration),
    /// The relay refused, with its reason.
    #[error("the relay refused: {0}")]
    Refused(ErrorAnswer),
    /// The relay answered something that does not fit the transfer.
    #[error("unexpected answer from the relay: {0}")]
    Unexpected(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: Arc<std::io::Error>,
    },
}

impl TransferError {
    /// Whether a new stream from where the transfer stands may succeed.
    fn resumable(&self) -> bool {
        match self {
            TransferError::Dial(_)
            | TransferError::Open(_)
            | TransferError::Stream(_)
            | TransferError::Timeout(_) => true,
            TransferError::Refused(answer) => answer.code.is_transient(),
            TransferError::BadFrame(_)
            | TransferError::Unexpected(_)
            | TransferError::File { .. } => false,
        }
    }

    fn file(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
        move |source| TransferError::File {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

impl From<FrameError> for TransferError {
    fn from(error: FrameError) -> Self {
        match error {
            FrameError::Io(error) => TransferError::Stream(Arc::new(error)),
            too_large => TransferError::BadFrame(too_large.to_string()),
        }
    }
}

impl From<DecodeError> for TransferError {
    fn from(error: DecodeError) -> Self {
        TransferError::BadFrame(error.to_string())
    }
}

/// The way to the home relay's blob protocol.
#[derive(Clone)]
pub struct BlobLink {
    network: Network,
    relay: PeerId,
    address: Multiaddr,
}

impl BlobLink {
    /// Transfers with the relay `relay`, dialled at `address` when not connected.
    pub fn new(network: Network, relay: PeerId, address: Multiaddr) -> Self {
        Self {
            network,
            relay,
            address,
        }
    }

    /// The relay's peer id.
    pub fn relay(&self) -> PeerId {
        self.relay
    }

    async fn open(&self) -> Result<libp2p::Stream, TransferError> {
        within(FRAME_TIMEOUT, self.network.dial(self.address.clone())).await??;
        within(
            FRAME_TIMEOUT,
            self.network
                .control()
                .open_stream(self.relay, StreamProtocol::new(BLOB_PROTOCOL)),
        )
        .await?
        .map_err(|error| TransferError::Open(Arc::new(error)))
    }

    /// Whether the relay holds blob `id` whole already: asks to upload it and sends
    /// nothing (a held blob gets its upload grace again, so a message naming it finds it).
    pub async fn holds(&self, id: BlobId, size: u64) -> Result<bool, TransferError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.holds_once(id, size).await {
                Ok(held) => return Ok(held),
                Err(error) if error.resumable() && attempt < TRANSFER_ATTEMPTS => {
                    tracing::debug!(%id, attempt, %error, "asking for a blob failed; again");
                    crate::runtime::sleep(FIRST_BACKOFF * (1 << (attempt - 1))).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn holds_once(&self, id: BlobId, size: u64) -> Result<bool, TransferError> {
        let mut stream = self.open().await?;
        let request = BlobRequest::Upload {
            id,
            size,
            offset: 0,
        };
        send(&mut stream, &request).await?;
        let mut buf = Vec::new();
        let held = match answer(&mut stream, &mut buf, FRAME_TIMEOUT).await? {
            BlobAnswer::Stored => true,
            BlobAnswer::Ready { .. } => false,
            BlobAnswer::Error(refusal) => return Err(TransferError::Refused(refusal)),
            other => return Err(TransferError::Unexpected(format!("{other:?} to an upload"))),
        };
        let _ = stream.close().await;
        Ok(held)
    }

    /// Uploads the `size` bytes of `file` as blob `id`, resuming where the relay's copy
    /// stands; returns once the relay stored it whole (hash checked). Progress is reported
    /// as the relay's copy grows.
    pub async fn upload(
        &self,
        file: &Path,
        id: BlobId,
        size: u64,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), TransferError> {
        let mut done = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upload_once(file, id, size, &mut done, progress).await {
                Ok(()) => return Ok(()),
                Err(error) if error.resumable() && attempt < TRANSFER_ATTEMPTS => {
                    tracing::debug!(%id, done, attempt, %error, "upload cut; resuming");
                    crate::runtime::sleep(FIRST_BACKOFF * (1 << (attempt - 1))).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn upload_once(
        &self,
        file: &Path,
        id: BlobId,
        size: u64,
        done: &mut u64,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), TransferError> {
        let mut stream = self.open().await?;
        let request = BlobRequest::Upload {
            id,
            size,
            offset: *done,
        };
        send(&mut stream, &request).await?;
        let mut buf = Vec::new();
        let offset = match answer(&mut stream, &mut buf, FRAME_TIMEOUT).await? {
            BlobAnswer::Ready { offset } if offset <= size => offset,
            BlobAnswer::Stored => {
                *done = size;
                progress(Progress::moved(size, size));
                return Ok(());
            }
            BlobAnswer::Error(refusal) => return Err(TransferError::Refused(refusal)),
            other => return Err(TransferError::Unexpected(format!("{other:?} to an upload"))),
        };
        *done = offset;
        progress(Progress::moved(offset, size));
        let mut input = crate::runtime::files::File::open(file)
            .await
            .map_err(TransferError::file(file))?;
        input
            .seek_to(offset)
            .await
            .map_err(TransferError::file(file))?;
        let mut chunk = vec![0u8; MAX_BLOB_DATA_BYTES];
        while *done < size {
            let want = usize::try_from(size - *done)
                .unwrap_or(usize::MAX)
                .min(MAX_BLOB_DATA_BYTES);
            input
                .read_exact(&mut chunk[..want])
                .await
                .map_err(TransferError::file(file))?;
            let data = BlobData {
                bytes: chunk[..want].to_vec(),
            };
            send(&mut stream, &data).await?;
            *done += want as u64;
            progress(Progress::moved(*done, size));
        }
        match answer(&mut stream, &mut buf, FINISH_TIMEOUT).await? {
            BlobAnswer::Stored => {
                let _ = stream.close().await;
                Ok(())
            }
            BlobAnswer::Error(refusal) => {
                // A mismatch deletes the relay's partial copy: a retry starts over.
                *done = 0;
                Err(TransferError::Refused(refusal))
            }
            other => Err(TransferError::Unexpected(format!(
                "{other:?} after the last byte"
            ))),
        }
    }

    /// Downloads blob `id` of `size` bytes into `partial`, appending to what it holds
    /// already (a resumed download); `origin` is the relay the blob was uploaded to, if
    /// not this one (the home relay fetches it from there first). The caller checks the
    /// bytes against `id`.
    pub async fn download(
        &self,
        id: BlobId,
        origin: Option<String>,
        size: u64,
        partial: &Path,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), TransferError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .download_once(id, origin.clone(), size, partial, progress)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) if error.resumable() && attempt < TRANSFER_ATTEMPTS => {
                    tracing::debug!(%id, attempt, %error, "download cut; resuming");
                    crate::runtime::sleep(FIRST_BACKOFF * (1 << (attempt - 1))).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn download_once(
        &self,
        id: BlobId,
        origin: Option<String>,
        size: u64,
        partial: &Path,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), TransferError> {
        let mut output = crate::runtime::files::File::append(partial)
            .await
            .map_err(TransferError::file(partial))?;
        let mut done = output.len().await.map_err(TransferError::file(partial))?;
        if done > size {
            // Not a prefix of this blob: start over.
            output
                .set_len(0)
                .await
                .map_err(TransferError::file(partial))?;
            done = 0;
        }
        if done == size {
            progress(Progress::moved(done, size));
            return Ok(());
        }
        let mut stream = self.open().await?;
        let request = BlobRequest::Download {
            id,
            relay: origin,
            offset: done,
        };
        send(&mut stream, &request).await?;
        let mut buf = Vec::new();
        loop {
            match answer(&mut stream, &mut buf, FRAME_TIMEOUT).await? {
                BlobAnswer::Sending {
                    size: sending,
                    offset,
                } if sending == size && offset == done => break,
                // The home relay is still fetching it from the relay that holds it.
                BlobAnswer::Fetching {
                    have,
                    size: fetching,
                } => progress(Progress {
                    done: have,
                    total: fetching,
                    relay_fetching: true,
                }),
                BlobAnswer::Error(refusal) => return Err(TransferError::Refused(refusal)),
                other => {
                    return Err(TransferError::Unexpected(format!(
                        "{other:?} to a download of {size} bytes from {done}"
                    )));
                }
            }
        }
        progress(Progress::moved(done, size));
        while done < size {
            if !within(FRAME_TIMEOUT, read_frame(&mut stream, &mut buf)).await?? {
                return Err(TransferError::Stream(Arc::new(
                    std::io::ErrorKind::UnexpectedEof.into(),
                )));
            }
            let data = BlobData::decode(&buf)?;
            if data.bytes.len() as u64 > size - done {
                return Err(TransferError::Unexpected(
                    "more bytes than the blob has".into(),
                ));
            }
            output
                .write_all(&data.bytes)
                .await
                .map_err(TransferError::file(partial))?;
            // Written through before it counts: a resumed download starts where the file
            // really ends.
            output.flush().await.map_err(TransferError::file(partial))?;
            done += data.bytes.len() as u64;
            progress(Progress::moved(done, size));
        }
        output
            .sync_all()
            .await
            .map_err(TransferError::file(partial))?;
        let _ = stream.close().await;
        Ok(())
    }
}

/// Waits at most `limit` for `work`.
async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Result<T, TransferError> {
    crate::runtime::timeout(limit, work)
        .await
        .map_err(|_| TransferError::Timeout(limit))
}

/// Writes one frame holding `value` (its CBOR, as its `encode` makes it).
async fn send<T: serde::Serialize>(
    stream: &mut libp2p::Stream,
    value: &T,
) -> Result<(), TransferError> {
    within(FRAME_TIMEOUT, write_frame(stream, value))
        .await?
        .map_err(|error| TransferError::Stream(Arc::new(error)))
}

/// Reads the relay's next answer frame.
async fn answer(
    stream: &mut libp2p::Stream,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<BlobAnswer, TransferError> {
    if !within(limit, read_frame(stream, buf)).await?? {
        return Err(TransferError::Stream(Arc::new(
            std::io::ErrorKind::UnexpectedEof.into(),
        )));
    }
    Ok(BlobAnswer::decode(buf)?)
}
