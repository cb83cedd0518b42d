//! Fetching a blob this relay does not hold from the relay it was uploaded to
//! (`/tidings/blob-federation/1`), once: concurrent downloads of the same blob watch the same
//! fetch. The bytes go through the same partial file, hash check and publish as an upload,
//! charged to the relay itself ([`FETCHED`], within `blobs.fetched_quota_bytes`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{AsyncReadExt, io::ReadHalf};
use libp2p::{PeerId, Stream, StreamProtocol};
use tidings_protocol::{
    BlobAnswer, BlobData, BlobId, BlobRequest, ErrorAnswer, ErrorCode, UserId,
    blob::BLOB_FEDERATION_PROTOCOL, framing,
};
use tokio::sync::watch;

use super::{BlobStore, files};
use crate::{
    metrics::{Direction, TransferOutcome},
    network::NetworkHandle,
    store::UploadStart,
    streams::{FrameTimeouts, read_frame_timed},
};

/// The account fetched blobs are charged to (no user: the relay's own copies).
pub(crate) const FETCHED: UserId = UserId::from_bytes([0; 32]);

/// Most fetches running at once; more downloads are answered `unavailable` (retry).
const MAX_FETCHES: usize = 16;

/// Most of those one local user may have started (joining a running fetch is free): a user
/// naming made-up relays, each fetch waiting out its timeouts, cannot hold them all.
const MAX_FETCHES_PER_USER: usize = 2;

/// How long opening a stream to the blob's relay may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the blob's relay may stay silent, and take over one frame.
const FETCH_TIMEOUTS: FrameTimeouts = FrameTimeouts {
    idle: Some(Duration::from_secs(30)),
    frame: Duration::from_secs(30),
};

/// Where a fetch stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchState {
    /// Bytes fetched so far of `size` (0 until the other relay answered).
    Running {
        /// Bytes fetched.
        have: u64,
        /// The blob's size.
        size: u64,
    },
    /// Stored here, hash checked.
    Done,
    /// It failed, with what to tell the device.
    Failed(ErrorAnswer),
}

/// The fetches running now, by blob, with the user who started each.
#[derive(Clone)]
pub(crate) struct Fetcher {
    control: libp2p_stream::Control,
    network: NetworkHandle,
    running: Arc<Mutex<HashMap<BlobId, Running>>>,
}

/// One fetch running.
struct Running {
    state: watch::Receiver<FetchState>,
    started_by: UserId,
}

/// Why a fetch was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchRefused {
    /// The relay runs [`MAX_FETCHES`] already.
    Busy,
    /// The user started [`MAX_FETCHES_PER_USER`] that still run.
    UserBusy,
}

impl Fetcher {
    pub fn new(control: libp2p_stream::Control, network: NetworkHandle) -> Self {
        Self {
            control,
            network,
            running: Arc::default(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<BlobId, Running>> {
        self.running
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Watches the fetch of `id` from `relay`, starting it for `user` unless one runs.
    pub fn fetch(
        &self,
        blobs: &BlobStore,
        id: BlobId,
        relay: PeerId,
        user: UserId,
    ) -> Result<watch::Receiver<FetchState>, FetchRefused> {
        let mut running = self.running();
        if let Some(fetch) = running.get(&id) {
            return Ok(fetch.state.clone());
        }
        if running.len() >= MAX_FETCHES {
            return Err(FetchRefused::Busy);
        }
        let started = running
            .values()
            .filter(|fetch| fetch.started_by == user)
            .count();
        if started >= MAX_FETCHES_PER_USER {
            return Err(FetchRefused::UserBusy);
        }
        let (sender, receiver) = watch::channel(FetchState::Running { have: 0, size: 0 });
        running.insert(
            id,
            Running {
                state: receiver.clone(),
                started_by: user,
            },
        );
        let fetcher = self.clone();
        let blobs = blobs.clone();
        tokio::spawn(async move {
            let end = match fetcher.run(&blobs, id, relay, &sender).await {
                Ok(()) => FetchState::Done,
                Err(answer) => answer,
            };
            let outcome = match &end {
                FetchState::Done => TransferOutcome::Done,
                FetchState::Failed(answer) if answer.code == ErrorCode::HashMismatch => {
                    TransferOutcome::HashMismatch
                }
                _ => TransferOutcome::Failed,
            };
            blobs.metrics().blobs.transfer(Direction::Fetch, outcome);
            // Out of the table first, so a download after the end starts afresh or finds it.
            fetcher.running().remove(&id);
            let _ = sender.send(end);
        });
        Ok(receiver)
    }

    async fn run(
        &self,
        blobs: &BlobStore,
        id: BlobId,
        relay: PeerId,
        progress: &watch::Sender<FetchState>,
    ) -> Result<(), FetchState> {
        let unreachable = |reason: String| {
            tracing::info!(blob = %id, %relay, %reason, "blob fetch failed");
            FetchState::Failed(ErrorAnswer::new(
                ErrorCode::Unavailable,
                format!("the blob's relay cannot be reached: {reason}"),
            ))
        };
        let failed = |error: super::BlobError| {
            tracing::warn!(%error, blob = %id, "blob fetch failed here");
            FetchState::Failed(ErrorAnswer::new(
                ErrorCode::Unavailable,
                "the relay failed; retry later",
            ))
        };
        // Where an earlier fetch of this blob stopped (its bytes are durable): go on from there.
        let earlier = blobs
            .store()
            .media_upload(FETCHED, id)
            .await
            .map_err(|error| failed(error.into()))?;
        let from = earlier.map_or(0, |upload| upload.have);
        let stream = self.open(relay).await.map_err(unreachable)?;
        let (mut reader, mut writer) = stream.split();
        let request = BlobRequest::Download {
            id,
            relay: None,
            offset: from,
        };
        framing::write_frame(&mut writer, &request)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let mut buf = Vec::new();
        read_frame(&mut reader, &mut buf)
            .await
            .map_err(unreachable)?;
        let size = match BlobAnswer::decode(&buf) {
            Ok(BlobAnswer::Sending { size, offset }) if offset == from => size,
            Ok(BlobAnswer::Error(answer)) => return Err(FetchState::Failed(answer)),
            Ok(other) => return Err(unreachable(format!("unexpected answer {other:?}"))),
            Err(error) => return Err(unreachable(error.to_string())),
        };
        if size > blobs.config().max_blob_bytes {
            return Err(FetchState::Failed(ErrorAnswer::new(
                ErrorCode::BlobTooLarge,
                format!("{size} bytes exceeds this relay's limit"),
            )));
        }
        if earlier.is_some_and(|upload| upload.size != size) {
            // Not the blob the earlier fetch got part of: start over next time.
            let _ = blobs.drop_upload(FETCHED, id).await;
            return Err(unreachable(
                "the blob's size changed since the last fetch".into(),
            ));
        }
        let start = blobs
            .store()
            .begin_media_upload(
                FETCHED,
                id,
                size,
                blobs.config().fetched_quota_bytes,
                blobs.config().grace_ms(),
            )
            .await
            .map_err(|error| failed(error.into()))?;
        match start {
            UploadStart::Stored => return Ok(()),
            UploadStart::OverQuota { held } => {
                tracing::warn!(blob = %id, held, size, "fetched media is at blobs.fetched_quota_bytes");
                return Err(FetchState::Failed(ErrorAnswer::new(
                    ErrorCode::QuotaExceeded,
                    "this relay keeps as much of other relays' media as it may; retry later",
                )));
            }
            UploadStart::Ready { .. } => {}
        }
        // Keeps garbage collection off the partial copy while it grows.
        let _active = blobs.claim_upload(FETCHED, id);
        let mut partial = blobs
            .blocking("opening a fetched blob", move |files| {
                files.open_partial(&FETCHED, &id, from)
            })
            .await
            .map_err(failed)?;
        if partial.have != from {
            drop(partial);
            let _ = blobs.drop_upload(FETCHED, id).await;
            return Err(unreachable(
                "the partial copy is shorter than recorded".into(),
            ));
        }
        while partial.have < size {
            let read = read_frame(&mut reader, &mut buf).await;
            let data = read
                .and_then(|()| BlobData::decode(&buf).map_err(|error| error.to_string()))
                .and_then(|data| {
                    let len = data.bytes.len() as u64;
                    if data.bytes.is_empty() || partial.have + len > size {
                        Err("a data frame is empty or goes past the size".to_string())
                    } else {
                        Ok(data)
                    }
                });
            let data = match data {
                Ok(data) => data,
                Err(reason) => {
                    // Keep what arrived: the next fetch goes on from there.
                    let recorded = blobs.record_partial(partial, FETCHED, id).await;
                    if let Err(error) = recorded {
                        tracing::warn!(%error, "recording an interrupted fetch failed");
                    }
                    return Err(unreachable(reason));
                }
            };
            let len = data.bytes.len() as u64;
            partial = blobs
                .blocking("appending to a fetched blob", move |_| {
                    files::append(&mut partial, &data.bytes).map(|()| partial)
                })
                .await
                .map_err(failed)?;
            blobs.metrics().blobs.bytes(Direction::Fetch, len);
            progress.send_replace(FetchState::Running {
                have: partial.have,
                size,
            });
        }
        let got = partial.hasher.clone().finish();
        if got != id {
            drop(partial);
            let _ = blobs.drop_upload(FETCHED, id).await;
            tracing::warn!(blob = %id, %relay, %got, "a fetched blob does not hash to its id");
            return Err(FetchState::Failed(ErrorAnswer::new(
                ErrorCode::HashMismatch,
                "the blob's relay sent bytes that do not match the id",
            )));
        }
        blobs.publish(partial, FETCHED, id).await.map_err(failed)?;
        tracing::debug!(blob = %id, %relay, size, "blob fetched");
        Ok(())
    }
}

impl Fetcher {
    /// Opens a stream to the blob's relay; when it cannot be dialed (known by id only, or at
    /// an address it left), looks for it in the DHT and tries once more.
    async fn open(&self, relay: PeerId) -> Result<Stream, String> {
        // Connected first: libp2p-stream's own dial can lose the request (network/connects.rs).
        let open = || {
            let (mut control, network) = (self.control.clone(), self.network.clone());
            let opening = async move {
                network.connect(relay, Vec::new()).await.map_err(|error| {
                    libp2p_stream::OpenStreamError::Io(std::io::Error::other(error))
                })?;
                control
                    .open_stream(relay, StreamProtocol::new(BLOB_FEDERATION_PROTOCOL))
                    .await
            };
            tokio::time::timeout(OPEN_TIMEOUT, opening)
        };
        let first = match open().await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => {
                return Err("the peer does not serve blobs".into());
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out opening a stream".to_string(),
        };
        if !self.network.find_peer(relay).await {
            return Err(format!("{first}; not found in the DHT either"));
        }
        match open().await {
            Ok(opened) => opened.map_err(|error| error.to_string()),
            Err(_) => Err("timed out opening a stream".to_string()),
        }
    }
}

/// Reads one frame from the blob's relay within [`FETCH_TIMEOUTS`].
async fn read_frame(reader: &mut ReadHalf<Stream>, buf: &mut Vec<u8>) -> Result<(), String> {
    match read_frame_timed(reader, buf, FETCH_TIMEOUTS).await {
        Ok(true) => Ok(()),
        Ok(false) => Err("the stream ended early".into()),
        Err(error) => Err(error.to_string()),
    }
}
