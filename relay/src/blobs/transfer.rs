//! The `/tidings/blob/1` handler: one upload or download per stream, from registered,
//! non-revoked devices of users homed here.
//!
//! An upload is refused (too large, over quota, disk low) before any byte is stored; its
//! data is appended to a partial file whose durable length is recorded when the stream ends
//! (and every [`PROGRESS_EVERY_BYTES`]), so a new stream resumes from there. At the declared
//! size the hash is checked: a match is published (`BlobStore::publish`), a mismatch deletes
//! the partial copy.

use std::{sync::Arc, time::Duration};

use futures::{AsyncReadExt, AsyncWriteExt, io::ReadHalf, io::WriteHalf};
use libp2p::{PeerId, Stream};
use tidings_protocol::{
    BlobAnswer, BlobData, BlobId, BlobRequest, ErrorAnswer, ErrorCode, UserId,
    blob::MAX_BLOB_DATA_BYTES, framing,
};
use tokio_util::sync::CancellationToken;

use super::{BlobError, BlobStore, files};
use crate::{
    disk::DiskFloor,
    metrics::{Direction, StreamKind, TransferOutcome},
    router::ProtocolHandler,
    session::device_of,
    streams::{FrameTimeouts, read_frame_timed},
};

/// How long a write to a device may take before the transfer is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// An upload records its durable length at least this often (so a crash loses at most this
/// much of it).
const PROGRESS_EVERY_BYTES: u64 = 16 * 1024 * 1024;

/// What the blob handler uses.
pub(crate) struct BlobContext {
    pub blobs: BlobStore,
    pub disk: Arc<DiskFloor>,
    /// How long a device may stay silent, and take over one frame.
    pub read_timeouts: FrameTimeouts,
    pub shutdown: CancellationToken,
    /// This relay's peer id in text (a download naming it needs no fetch).
    pub self_peer: String,
}

/// The `/tidings/blob/1` handler.
#[derive(Clone)]
pub(crate) struct BlobHandler(Arc<BlobContext>);

impl BlobHandler {
    pub fn new(context: BlobContext) -> Self {
        Self(Arc::new(context))
    }
}

impl ProtocolHandler for BlobHandler {
    const KIND: StreamKind = StreamKind::Blob;

    async fn accept(self, peer: PeerId, stream: Stream) {
        let (reader, writer) = stream.split();
        let mut transfer = Transfer {
            cx: self.0,
            reader,
            writer,
            buf: Vec::new(),
        };
        transfer.serve(peer).await;
        let _ = transfer.writer.close().await;
    }
}

/// One blob stream.
struct Transfer {
    cx: Arc<BlobContext>,
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    buf: Vec<u8>,
}

/// Why a frame was not read.
enum ReadEnd {
    /// The device closed, failed, or was too slow.
    Gone,
    /// The relay is stopping.
    Shutdown,
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> BlobAnswer {
    BlobAnswer::Error(ErrorAnswer::new(code, message))
}

impl Transfer {
    async fn serve(&mut self, peer: PeerId) {
        let user = match self.user_of(peer).await {
            Ok(user) => user,
            Err(answer) => {
                self.answer(&answer).await;
                return;
            }
        };
        let request = match self.next_frame().await {
            Ok(()) => BlobRequest::decode(&self.buf),
            Err(_) => return,
        };
        match request {
            Ok(BlobRequest::Upload { id, size, offset }) => {
                let outcome = self.upload(user, id, size, offset).await;
                let metrics = &self.cx.blobs.metrics().blobs;
                metrics.transfer(Direction::Upload, outcome);
            }
            Ok(BlobRequest::Download { id, relay, offset }) => {
                let outcome = self.download(id, relay, offset).await;
                let metrics = &self.cx.blobs.metrics().blobs;
                metrics.transfer(Direction::Download, outcome);
            }
            Err(error) => {
                self.answer(&refusal(ErrorCode::Malformed, error.to_string()))
                    .await;
            }
        }
    }

    /// The local user whose registered device `peer` is.
    async fn user_of(&self, peer: PeerId) -> Result<UserId, BlobAnswer> {
        let not_registered = || {
            refusal(
                ErrorCode::NotRegistered,
                "register this device with this relay first",
            )
        };
        let device = device_of(&peer).ok_or_else(not_registered)?;
        let store = self.cx.blobs.store();
        let unavailable = |error: tidings_protocol::store::StoreError| {
            tracing::warn!(%error, "blob stream: reading the device failed");
            refusal(ErrorCode::Unavailable, "storage unavailable; retry later")
        };
        let user = store
            .device_user(device)
            .await
            .map_err(unavailable)?
            .ok_or_else(not_registered)?;
        let record = store.user(user).await.map_err(unavailable)?;
        match record {
            Some(record) if record.is_home(&self.cx.self_peer) => Ok(user),
            _ => Err(not_registered()),
        }
    }

    /// Reads the next frame into `buf` within the read timeouts, unless the relay stops.
    async fn next_frame(&mut self) -> Result<(), ReadEnd> {
        let read = read_frame_timed(&mut self.reader, &mut self.buf, self.cx.read_timeouts);
        let result = tokio::select! {
            biased;
            _ = self.cx.shutdown.cancelled() => return Err(ReadEnd::Shutdown),
            result = read => result,
        };
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReadEnd::Gone),
            Err(error) => {
                if let Some(reason) = error.deadline() {
                    self.cx
                        .blobs
                        .metrics()
                        .stream_timed_out(StreamKind::Blob, reason);
                }
                tracing::debug!(%error, "blob stream read ended");
                Err(ReadEnd::Gone)
            }
        }
    }

    /// Writes one answer; false if the device is gone or too slow.
    async fn answer(&mut self, answer: &BlobAnswer) -> bool {
        self.write(answer).await
    }

    /// Writes one frame; false if the device is gone or too slow.
    async fn write(&mut self, frame: &impl serde::Serialize) -> bool {
        matches!(
            tokio::time::timeout(WRITE_TIMEOUT, framing::write_frame(&mut self.writer, frame))
                .await,
            Ok(Ok(()))
        )
    }

    async fn failed(&mut self, error: BlobError) -> TransferOutcome {
        tracing::warn!(%error, "blob transfer failed");
        self.answer(&refusal(
            ErrorCode::Unavailable,
            "the relay failed; retry later",
        ))
        .await;
        TransferOutcome::Failed
    }

    async fn upload(
        &mut self,
        user: UserId,
        id: BlobId,
        size: u64,
        _offset: u64,
    ) -> TransferOutcome {
        let blobs = self.cx.blobs.clone();
        let config = blobs.config();
        if size > config.max_blob_bytes {
            let max = config.max_blob_bytes;
            self.answer(&refusal(
                ErrorCode::BlobTooLarge,
                format!("{size} bytes exceeds this relay's {max}"),
            ))
            .await;
            return TransferOutcome::Refused;
        }
        if let Err(full) = self.cx.disk.admit() {
            self.answer(&BlobAnswer::Error(full)).await;
            return TransferOutcome::Refused;
        }
        let Some(_active) = blobs.claim_upload(user, id) else {
            self.answer(&refusal(
                ErrorCode::Unavailable,
                "another stream is uploading this blob; retry later",
            ))
            .await;
            return TransferOutcome::Refused;
        };
        let quota = config.user_quota_bytes;
        let start = match blobs
            .store()
            .begin_media_upload(user, id, size, quota)
            .await
        {
            Ok(start) => start,
            Err(error) => return self.failed(error.into()).await,
        };
        let durable = match start {
            crate::store::UploadStart::Stored => {
                self.answer(&BlobAnswer::Stored).await;
                return TransferOutcome::Deduplicated;
            }
            crate::store::UploadStart::OverQuota { held } => {
                self.answer(&refusal(
                    ErrorCode::QuotaExceeded,
                    format!("this account holds {held} bytes of media; the quota is {quota}"),
                ))
                .await;
                return TransferOutcome::Refused;
            }
            crate::store::UploadStart::Ready { have } => have,
        };
        let opened = blobs
            .blocking("opening a partial upload", move |files| {
                files.open_partial(&user, &id, durable)
            })
            .await;
        let mut partial = match opened {
            Ok(partial) => partial,
            Err(error) => return self.failed(error).await,
        };
        if !self
            .answer(&BlobAnswer::Ready {
                offset: partial.have,
            })
            .await
        {
            return self.keep(partial, user, id).await;
        }
        let mut recorded = partial.have;
        while partial.have < size {
            match self.next_frame().await {
                Ok(()) => {}
                Err(ReadEnd::Gone | ReadEnd::Shutdown) => {
                    return self.keep(partial, user, id).await;
                }
            }
            let data = match BlobData::decode(&self.buf) {
                Ok(data) => data,
                Err(error) => {
                    self.answer(&refusal(ErrorCode::Malformed, error.to_string()))
                        .await;
                    return self.keep(partial, user, id).await;
                }
            };
            let len = data.bytes.len() as u64;
            if data.bytes.is_empty() || partial.have + len > size {
                self.answer(&refusal(
                    ErrorCode::Malformed,
                    "a data frame is empty or goes past the declared size",
                ))
                .await;
                return self.keep(partial, user, id).await;
            }
            partial = match blobs
                .blocking("appending to a partial upload", move |_| {
                    files::append(&mut partial, &data.bytes).map(|()| partial)
                })
                .await
            {
                Ok(partial) => partial,
                Err(error) => return self.failed(error).await,
            };
            blobs.metrics().blobs.bytes(Direction::Upload, len);
            if partial.have - recorded >= PROGRESS_EVERY_BYTES && partial.have < size {
                partial = match self.record(partial, user, id).await {
                    Ok(partial) => partial,
                    Err(error) => return self.failed(error).await,
                };
                recorded = partial.have;
            }
        }
        let got = partial.hasher.clone().finish();
        if got != id {
            tracing::info!(%user, blob = %id, %got, "upload does not hash to its id; deleted");
            drop(partial);
            if let Err(error) = blobs.drop_upload(user, id).await {
                tracing::warn!(%error, "deleting a mismatched upload failed");
            }
            self.answer(&refusal(
                ErrorCode::HashMismatch,
                format!("the bytes hash to {got}, not {id}"),
            ))
            .await;
            return TransferOutcome::HashMismatch;
        }
        if let Err(error) = blobs.publish(partial, user, id).await {
            return self.failed(error).await;
        }
        tracing::debug!(%user, blob = %id, size, "blob stored");
        self.answer(&BlobAnswer::Stored).await;
        TransferOutcome::Done
    }

    /// Syncs a partial upload and records its durable length.
    async fn record(
        &self,
        partial: files::Partial,
        user: UserId,
        id: BlobId,
    ) -> Result<files::Partial, BlobError> {
        let blobs = &self.cx.blobs;
        let partial = blobs
            .blocking("syncing a partial upload", move |_| {
                partial.file.sync_data().map(|()| partial)
            })
            .await?;
        blobs
            .store()
            .media_upload_progress(user, id, partial.have)
            .await?;
        Ok(partial)
    }

    /// An upload cut short: keep what arrived for a resume.
    async fn keep(&self, partial: files::Partial, user: UserId, id: BlobId) -> TransferOutcome {
        match self.record(partial, user, id).await {
            Ok(_) => TransferOutcome::Interrupted,
            Err(error) => {
                tracing::warn!(%error, "recording an interrupted upload failed");
                TransferOutcome::Failed
            }
        }
    }

    async fn download(
        &mut self,
        id: BlobId,
        relay: Option<String>,
        offset: u64,
    ) -> TransferOutcome {
        let blobs = self.cx.blobs.clone();
        let row = match blobs.store().media_blob(id).await {
            Ok(row) => row,
            Err(error) => return self.failed(error.into()).await,
        };
        let opened = match row {
            Some(_) => {
                blobs
                    .blocking("opening a blob", move |files| files.open_blob(&id, offset))
                    .await
            }
            None => Ok(None),
        };
        let (mut file, size) = match opened {
            Ok(Some(opened)) => opened,
            Ok(None) => {
                let elsewhere = relay.filter(|relay| *relay != self.cx.self_peer);
                let answer = match elsewhere {
                    // Fetching from the blob's relay is not built yet.
                    Some(relay) => refusal(
                        ErrorCode::Unavailable,
                        format!(
                            "this relay does not hold {id} and cannot fetch it from {relay} yet"
                        ),
                    ),
                    None => refusal(ErrorCode::BlobNotFound, format!("no blob {id} here")),
                };
                self.answer(&answer).await;
                return TransferOutcome::Refused;
            }
            Err(error) => return self.failed(error).await,
        };
        if offset > size {
            self.answer(&refusal(
                ErrorCode::Malformed,
                format!("offset {offset} is past the blob's {size} bytes"),
            ))
            .await;
            return TransferOutcome::Refused;
        }
        if !self.answer(&BlobAnswer::Sending { size, offset }).await {
            return TransferOutcome::Interrupted;
        }
        let mut sent = offset;
        while sent < size {
            if self.cx.shutdown.is_cancelled() {
                return TransferOutcome::Interrupted;
            }
            let read = blobs
                .blocking("reading a blob", move |_| {
                    files::read_chunk(&mut file, MAX_BLOB_DATA_BYTES).map(|chunk| (file, chunk))
                })
                .await;
            let chunk;
            (file, chunk) = match read {
                Ok(read) => read,
                Err(error) => return self.failed(error).await,
            };
            if chunk.is_empty() {
                // The file is shorter than its row says: end the stream; the device's hash
                // check fails and it tries again.
                tracing::error!(blob = %id, sent, size, "blob file shorter than recorded");
                return TransferOutcome::Failed;
            }
            let len = chunk.len() as u64;
            if !self.write(&BlobData { bytes: chunk }).await {
                return TransferOutcome::Interrupted;
            }
            blobs.metrics().blobs.bytes(Direction::Download, len);
            sent += len;
        }
        TransferOutcome::Done
    }
}
