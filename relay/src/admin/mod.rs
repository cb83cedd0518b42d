//! The admin socket: a Unix socket in the data dir through which `tidings-relay status` and
//! `tidings-relay users ...` talk to the running relay.
//!
//! `protocol.rs` is the wire format (versioned, length-prefixed CBOR, bounded), `server.rs`
//! binds and serves the socket, `replies.rs` the answers' data, one file per request kind answers it (`status.rs`,
//! `users.rs`, `suspend.rs`, `remove.rs`), and `client.rs` is the CLI side. Handlers use the
//! relay's handles (store, network, live sessions); nothing blocks the runtime.

mod backup;
mod client;
pub mod print;
pub mod protocol;
mod remove;
pub mod replies;
mod server;
mod status;
mod suspend;
mod users;

use std::{path::PathBuf, sync::Arc, time::Instant};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use client::{ClientError, request};
pub use protocol::{AdminError, Answer, Reply, Request};

use crate::{
    blobs::BlobStore, network::NetworkHandle, push::Push, session::live::LiveDevices, store::Store,
};

/// File name of the admin socket inside the data dir.
pub const ADMIN_SOCKET: &str = "admin.sock";

/// The per-user limits `users show` reports usage against.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quotas {
    pub mailbox_entries: u64,
    pub mailbox_bytes: u64,
    pub media_bytes: u64,
    pub outbox_entries: u64,
}

/// The handles the admin handlers use.
pub(crate) struct AdminContext {
    pub store: Store,
    pub network: NetworkHandle,
    /// Open sessions by device (ended on suspend and remove).
    pub live: Arc<LiveDevices>,
    /// Media blob files (deleted on remove).
    pub blobs: BlobStore,
    /// Web Push (a removed user's devices are forgotten).
    pub push: Push,
    pub data_dir: PathBuf,
    pub name: String,
    pub announce: Vec<String>,
    pub quotas: Quotas,
    pub started: Instant,
    pub started_at_ms: u64,
    /// The open databases, for online backups and the compaction estimate.
    pub backup: crate::backup::LiveFiles,
}

/// Binds `<data dir>/admin.sock` and serves it on `tracker` until `stop`; the socket file is
/// removed when it stops.
pub(crate) async fn start(
    cx: AdminContext,
    tracker: &TaskTracker,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let path = cx.data_dir.join(ADMIN_SOCKET);
    let listener = server::bind(&path).await?;
    tracing::info!(path = %path.display(), "serving the admin socket");
    tracker.spawn(server::serve(Arc::new(cx), listener, path, stop));
    Ok(())
}

/// A store failure, as the CLI is told.
fn storage(error: crate::store::StoreError) -> AdminError {
    tracing::warn!(%error, "admin request failed in the store");
    AdminError::Storage(error.to_string())
}
