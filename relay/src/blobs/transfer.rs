//! The blob stream handlers: `/tidings/blob/1` (one upload or download per stream, from
//! registered, non-revoked devices of users homed here) and `/tidings/blob-federation/1`
//! (downloads of blobs held here, for other relays, within a byte rate per relay).

use std::{sync::Arc, time::Duration};

use futures::{AsyncReadExt, AsyncWriteExt, io::ReadHalf, io::WriteHalf};
use libp2p::{PeerId, Stream};
use tidings_protocol::{BlobAnswer, BlobRequest, ErrorAnswer, ErrorCode, UserId, framing};
use tokio_util::sync::CancellationToken;

use super::{BlobError, BlobStore, fetch::Fetcher};
use crate::{
    disk::DiskFloor,
    ingest::RateLimiter,
    metrics::{Direction, StreamKind, TransferOutcome},
    router::ProtocolHandler,
    session::device_of,
    streams::{FrameTimeouts, read_frame_timed},
};

/// How long a write to a device may take before the transfer is dropped.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the blob handler uses.
pub(crate) struct BlobContext {
    pub blobs: BlobStore,
    pub disk: Arc<DiskFloor>,
    /// How long a device may stay silent, and take over one frame.
    pub read_timeouts: FrameTimeouts,
    pub shutdown: CancellationToken,
    /// This relay's peer id in text (a download naming it needs no fetch).
    pub self_peer: String,
    /// Fetching blobs held elsewhere.
    pub fetcher: Fetcher,
    /// KiB per second each other relay may fetch from here.
    pub relay_rate: RateLimiter<PeerId>,
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
        let mut transfer = Transfer::new(self.0, stream);
        transfer.serve(peer).await;
        let _ = transfer.writer.close().await;
    }
}

/// The `/tidings/blob-federation/1` handler (shares the device handler's context).
#[derive(Clone)]
pub(crate) struct BlobFederationHandler(Arc<BlobContext>);

impl BlobHandler {
    /// The federation handler over the same blobs.
    pub fn federation(&self) -> BlobFederationHandler {
        BlobFederationHandler(self.0.clone())
    }
}

impl ProtocolHandler for BlobFederationHandler {
    const KIND: StreamKind = StreamKind::BlobFederation;

    async fn accept(self, peer: PeerId, stream: Stream) {
        let mut transfer = Transfer::new(self.0, stream);
        transfer.serve_relay(peer).await;
        let _ = transfer.writer.close().await;
    }
}

/// One blob stream.
pub(super) struct Transfer {
    pub(super) cx: Arc<BlobContext>,
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    pub(super) buf: Vec<u8>,
}

/// Why a frame was not read.
pub(super) enum ReadEnd {
    /// The device closed, failed, or was too slow.
    Gone,
    /// The relay is stopping.
    Shutdown,
}

pub(super) fn refusal(code: ErrorCode, message: impl Into<String>) -> BlobAnswer {
    BlobAnswer::Error(ErrorAnswer::new(code, message))
}

impl Transfer {
    fn new(cx: Arc<BlobContext>, stream: Stream) -> Self {
        let (reader, writer) = stream.split();
        Self {
            cx,
            reader,
            writer,
            buf: Vec::new(),
        }
    }

    /// Serves another relay's download of a blob held here (it never fetches further).
    async fn serve_relay(&mut self, peer: PeerId) {
        let request = match self.next_frame().await {
            Ok(()) => BlobRequest::decode(&self.buf),
            Err(_) => return,
        };
        let (id, offset) = match request {
            Ok(BlobRequest::Download { id, offset, .. }) => (id, offset),
            Ok(BlobRequest::Upload { .. }) => {
                let answer = refusal(ErrorCode::Malformed, "relays only download blobs");
                self.answer(&answer).await;
                return;
            }
            Err(error) => {
                self.answer(&refusal(ErrorCode::Malformed, error.to_string()))
                    .await;
                return;
            }
        };
        let outcome = self.serve_held(id, offset, Some(peer)).await;
        self.cx
            .blobs
            .metrics()
            .blobs
            .transfer(Direction::Serve, outcome);
    }

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
                let outcome = self.download(user, id, relay, offset).await;
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
    pub(super) async fn next_frame(&mut self) -> Result<(), ReadEnd> {
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
    pub(super) async fn answer(&mut self, answer: &BlobAnswer) -> bool {
        self.write(answer).await
    }

    /// Writes one frame; false if the device is gone or too slow.
    pub(super) async fn write(&mut self, frame: &impl serde::Serialize) -> bool {
        matches!(
            tokio::time::timeout(WRITE_TIMEOUT, framing::write_frame(&mut self.writer, frame))
                .await,
            Ok(Ok(()))
        )
    }

    pub(super) async fn failed(&mut self, error: BlobError) -> TransferOutcome {
        tracing::warn!(%error, "blob transfer failed");
        self.answer(&refusal(
            ErrorCode::Unavailable,
            "the relay failed; retry later",
        ))
        .await;
        TransferOutcome::Failed
    }
}
