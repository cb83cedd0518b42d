//! Serving an upload: refused before any byte when too large, over quota or the disk is
//! low; data appended to a partial file whose durable length is recorded when the stream
//! ends (and every [`PROGRESS_EVERY_BYTES`]), so a new stream resumes there; at the declared
//! size the hash is checked, then the blob published or the partial copy deleted.

use tidings_protocol::{BlobAnswer, BlobData, BlobId, ErrorCode, UserId};

use super::{
    files,
    transfer::{ReadEnd, Transfer, refusal},
};
use crate::{
    metrics::{Direction, TransferOutcome},
    store::UploadStart,
};

/// An upload records its durable length at least this often (so a crash loses at most this
/// much of it).
const PROGRESS_EVERY_BYTES: u64 = 16 * 1024 * 1024;

impl Transfer {
    pub(super) async fn upload(
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
        let (quota, grace) = (config.user_quota_bytes, config.grace_ms());
        let start = match blobs
            .store()
            .begin_media_upload(user, id, size, quota, grace)
            .await
        {
            Ok(start) => start,
            Err(error) => return self.failed(error.into()).await,
        };
        let durable = match start {
            UploadStart::Stored => {
                self.answer(&BlobAnswer::Stored).await;
                return TransferOutcome::Deduplicated;
            }
            UploadStart::OverQuota { held } => {
                self.answer(&refusal(
                    ErrorCode::QuotaExceeded,
                    format!("this account holds {held} bytes of media; the quota is {quota}"),
                ))
                .await;
                return TransferOutcome::Refused;
            }
            UploadStart::Ready { have } => have,
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
                partial = match self.cx.blobs.record_partial(partial, user, id).await {
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

    /// An upload cut short: keep what arrived for a resume.
    async fn keep(&self, partial: files::Partial, user: UserId, id: BlobId) -> TransferOutcome {
        match self.cx.blobs.record_partial(partial, user, id).await {
            Ok(_) => TransferOutcome::Interrupted,
            Err(error) => {
                tracing::warn!(%error, "recording an interrupted upload failed");
                TransferOutcome::Failed
            }
        }
    }
}
