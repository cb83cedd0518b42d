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

impl AdminContext {
    /// The admin handlers' view of a relay started now on `backup`'s data dir with `config`.
    pub fn new(
        store: Store,
        network: NetworkHandle,
        live: Arc<LiveDevices>,
        blobs: BlobStore,
        push: Push,
        backup: crate::backup::LiveFiles,
        config: &crate::RelayConfig,
    ) -> Self {
        Self {
            store,
            network,
            live,
            blobs,
            push,
            data_dir: backup.data_dir().to_path_buf(),
            name: config.name.clone(),
            announce: config.announce.clone(),
            quotas: Quotas {
                mailbox_entries: config.limits.mailbox_max_envelopes,
                mailbox_bytes: config.limits.mailbox_max_bytes,
                media_bytes: config.blobs.user_quota_bytes,
                outbox_entries: config.limits.outbox_max_per_user,
            },
            started: Instant::now(),
            started_at_ms: tidings_protocol::now_ms(),
            backup,
        }
    }
}

/// Binds `<data dir>/admin.sock` and serves it on `tracker` until `stop`; the socket file is
/// removed when it stops. Without the socket (a data dir path longer than a Unix socket path
/// may be, say) the relay still serves its users: that is logged as an error, not fatal.
pub(crate) async fn start(cx: AdminContext, tracker: &TaskTracker, stop: CancellationToken) {
    let path = cx.data_dir.join(ADMIN_SOCKET);
    match server::bind(&path).await {
        Ok(listener) => {
            tracing::info!(path = %path.display(), "serving the admin socket");
            tracker.spawn(server::serve(Arc::new(cx), listener, path, stop));
        }
        Err(error) => tracing::error!(
            path = %path.display(),
            %error,
            "no admin socket: `tidings-relay status` and `users` cannot reach this relay"
        ),
    }
}

/// A store failure, as the CLI is told.
fn storage(error: crate::store::StoreError) -> AdminError {
    tracing::warn!(%error, "admin request failed in the store");
    AdminError::Storage(error.to_string())
}
