//! Serving a download: a held blob is sent from an offset (to another relay within its
//! byte rate); one held elsewhere is fetched first, the device told how far the fetch got.

use std::time::Duration;

use libp2p::PeerId;
use tidings_protocol::{
    BlobAnswer, BlobData, BlobId, ErrorCode, UserId, blob::MAX_BLOB_DATA_BYTES,
};

use super::{
    BlobError,
    fetch::{FetchRefused, FetchState},
    files,
    transfer::{Transfer, WRITE_TIMEOUT, refusal},
};
use crate::metrics::{Direction, TransferOutcome};

/// How long a transfer to another relay waits before it looks at its byte rate again.
const RATE_WAIT: Duration = Duration::from_millis(20);

impl Transfer {
    /// A download by a device of `user`: sent if held here, else fetched from `relay` first
    /// (when that is another relay).
    pub(super) async fn download(
        &mut self,
        user: UserId,
        id: BlobId,
        relay: Option<String>,
        offset: u64,
    ) -> TransferOutcome {
        let elsewhere = relay.filter(|relay| *relay != self.cx.self_peer);
        let Some(elsewhere) = elsewhere else {
            return self.serve_held(id, offset, None).await;
        };
        match self.open_held(id, offset).await {
            Ok(Some((file, size))) => return self.send_blob(id, file, size, offset, None).await,
            Ok(None) => {}
            Err(error) => return self.failed(error).await,
        }
        let Ok(peer) = elsewhere.parse::<PeerId>() else {
            let answer = refusal(ErrorCode::Malformed, "the blob's relay is not a peer id");
            self.answer(&answer).await;
            return TransferOutcome::Refused;
        };
        if let Err(outcome) = self.await_fetch(id, peer, user).await {
            return outcome;
        }
        self.serve_held(id, offset, None).await
    }

    /// Sends blob `id` from `offset` if it is held here (to another relay, `pace`, within
    /// its byte rate), else answers `blob_not_found`.
    pub(super) async fn serve_held(
        &mut self,
        id: BlobId,
        offset: u64,
        pace: Option<PeerId>,
    ) -> TransferOutcome {
        match self.open_held(id, offset).await {
            Ok(Some((file, size))) => self.send_blob(id, file, size, offset, pace).await,
            Ok(None) => {
                let answer = refusal(ErrorCode::BlobNotFound, format!("no blob {id} here"));
                self.answer(&answer).await;
                TransferOutcome::Refused
            }
            Err(error) => self.failed(error).await,
        }
    }

    /// The file of blob `id` (positioned at `offset`) and its size, if it is held here.
    async fn open_held(
        &self,
        id: BlobId,
        offset: u64,
    ) -> Result<Option<(std::fs::File, u64)>, BlobError> {
        let blobs = &self.cx.blobs;
        if blobs.store().media_blob(id).await?.is_none() {
            return Ok(None);
        }
        blobs
            .blocking("opening a blob", move |files| files.open_blob(&id, offset))
            .await
    }

    /// Has the blob fetched from `relay` (or joins the fetch running), telling the device
    /// how far it got; Err with the transfer's outcome if it failed.
    async fn await_fetch(
        &mut self,
        id: BlobId,
        relay: PeerId,
        user: UserId,
    ) -> Result<(), TransferOutcome> {
        let mut state = match self.cx.fetcher.fetch(&self.cx.blobs, id, relay, user) {
            Ok(state) => state,
            Err(refused) => {
                let answer = match refused {
                    FetchRefused::Busy => refusal(
                        ErrorCode::Unavailable,
                        "this relay is fetching too many blobs; retry later",
                    ),
                    FetchRefused::UserBusy => refusal(
                        ErrorCode::RateLimited,
                        "your downloads from other relays already keep this relay busy; retry when they end",
                    ),
                };
                self.answer(&answer).await;
                return Err(TransferOutcome::Refused);
            }
        };
        let mut ended = false;
        loop {
            let current = state.borrow_and_update().clone();
            match current {
                FetchState::Done => return Ok(()),
                FetchState::Failed(answer) => {
                    self.answer(&BlobAnswer::Error(answer)).await;
                    return Err(TransferOutcome::Refused);
                }
                FetchState::Running { .. } if ended => {
                    self.answer(&refusal(ErrorCode::Unavailable, "the fetch stopped; retry"))
                        .await;
                    return Err(TransferOutcome::Failed);
                }
                FetchState::Running { have, size } => {
                    if size > 0 && !self.answer(&BlobAnswer::Fetching { have, size }).await {
                        return Err(TransferOutcome::Interrupted);
                    }
                }
            }
            tokio::select! {
                _ = self.cx.shutdown.cancelled() => return Err(TransferOutcome::Interrupted),
                changed = state.changed() => ended = changed.is_err(),
            }
        }
    }

    /// Sends a held blob from `offset`; to another relay (`pace`) within its byte rate.
    async fn send_blob(
        &mut self,
        id: BlobId,
        mut file: std::fs::File,
        size: u64,
        offset: u64,
        pace: Option<PeerId>,
    ) -> TransferOutcome {
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
        let direction = match pace {
            Some(_) => Direction::Serve,
            None => Direction::Download,
        };
        let blobs = self.cx.blobs.clone();
        let mut sent = offset;
        while sent < size {
            if self.cx.shutdown.is_cancelled() {
                return TransferOutcome::Interrupted;
            }
            if let Some(peer) = pace
                && !self.wait_for_rate(peer).await
            {
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
            blobs.metrics().blobs.bytes(direction, len);
            sent += len;
        }
        TransferOutcome::Done
    }

    /// Waits until `peer` may take another data frame; false if it waited too long.
    async fn wait_for_rate(&self, peer: PeerId) -> bool {
        let kib = MAX_BLOB_DATA_BYTES.div_ceil(1024);
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        while self.cx.relay_rate.take(peer, [kib]) == 0 {
            if tokio::time::Instant::now() >= deadline || self.cx.shutdown.is_cancelled() {
                return false;
            }
            tokio::time::sleep(RATE_WAIT).await;
        }
        true
    }
}
