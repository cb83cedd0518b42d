//! A started relay: its addresses, test hooks and graceful shutdown.

use std::{path::PathBuf, sync::Arc};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[cfg(feature = "test-utils")]
use crate::blobs::BlobStore;
use crate::{
    network::{self, DhtStats, NetworkHandle},
    store::WriterHandle,
};

/// A started relay. Dropping it without [`RunningRelay::shutdown`] leaves its tasks running
/// until the runtime stops.
pub struct RunningRelay {
    pub(super) network: NetworkHandle,
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    pub(super) metrics_addr: Option<std::net::SocketAddr>,
    /// Where the browser page is served, if it is.
    pub(super) web_addr: Option<std::net::SocketAddr>,
    pub(super) sessions_stop: CancellationToken,
    pub(super) network_stop: CancellationToken,
    pub(super) sessions: TaskTracker,
    pub(super) background: TaskTracker,
    pub(super) writer: WriterHandle,
    /// For the test hook that runs blob garbage collection on demand.
    #[cfg(feature = "test-utils")]
    pub(super) blobs: BlobStore,
    /// Statuses (their clock, the sweep).
    pub(super) status: crate::status::StatusBoard,
    /// The open databases, for online backups.
    pub(super) live_files: crate::backup::LiveFiles,
}

impl RunningRelay {
    /// The relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.network.peer_id()
    }

    /// The addresses it listens on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.network.listen_addrs()
    }

    /// Listen addresses with `/p2p/<peer id>` appended: what a client dials.
    pub fn dial_addrs(&self) -> Vec<Multiaddr> {
        let peer = self.peer_id();
        self.listen_addrs()
            .into_iter()
            .map(|address| address.with(Protocol::P2p(peer)))
            .collect()
    }

    /// How many other relays this relay's DHT routing table holds.
    pub async fn routing_peers(&self) -> usize {
        self.network.routing_peers().await
    }

    /// Looks up a user's home record in the DHT, as this relay sees it.
    pub async fn lookup_home(
        &self,
        user: tidings_protocol::UserId,
    ) -> Option<tidings_protocol::HomeRecord> {
        self.network
            .get_home(user, network::Lookup::FirstValid)
            .await
    }

    /// A handle on the relay's network event loop.
    pub fn network(&self) -> NetworkHandle {
        self.network.clone()
    }

    /// As [`RunningRelay::lookup_home`], with what the DHT query cost (for benchmarks).
    #[cfg(feature = "test-utils")]
    pub async fn lookup_home_with_stats(
        &self,
        user: tidings_protocol::UserId,
    ) -> (Option<tidings_protocol::HomeRecord>, network::LookupStats) {
        self.network
            .get_home_with_stats(user, network::Lookup::FirstValid)
            .await
    }

    /// Test hook: runs one blob garbage collection pass now (as the timer would); how many
    /// blobs and unfinished uploads it deleted.
    #[cfg(feature = "test-utils")]
    pub async fn collect_blob_garbage(&self) -> Result<(usize, usize), String> {
        crate::blobs::collect_garbage(&self.blobs, tidings_protocol::now_ms())
            .await
            .map(|swept| (swept.blobs, swept.uploads))
            .map_err(|error| error.to_string())
    }

    /// The clock this relay judges status expiry by (advance it in tests).
    pub fn status_clock(&self) -> tidings_protocol::status::Clock {
        self.status.clock().clone()
    }

    /// Runs the status sweep now (as its timer would): how many expired statuses it deleted.
    pub async fn sweep_statuses(&self) -> Result<usize, String> {
        self.status.sweep().await.map_err(|error| error.to_string())
    }

    /// How many stored things (envelopes, profiles, statuses) reference blob `id`.
    pub async fn media_refs(&self, id: tidings_protocol::BlobId) -> Result<u64, String> {
        self.status
            .media_refs(id)
            .await
            .map_err(|error| error.to_string())
    }

    /// How many forward entries wait for another relay to take a status.
    pub async fn pending_status_forwards(&self) -> Result<u64, String> {
        self.status
            .pending_forwards()
            .await
            .map_err(|error| error.to_string())
    }

    /// How many statuses the relay stores, expired or not.
    pub async fn stored_statuses(&self) -> Result<u64, String> {
        self.status
            .stored()
            .await
            .map_err(|error| error.to_string())
    }

    /// Takes an online backup into `to` (new or empty) while the relay serves: each
    /// database from one snapshot, the blobs it names, config and keys, a manifest last.
    pub async fn backup(
        &self,
        to: PathBuf,
    ) -> Result<crate::backup::Manifest, crate::backup::BackupError> {
        let live = self.live_files.clone();
        tokio::task::spawn_blocking(move || crate::backup::backup_online(&live, &to))
            .await
            .map_err(|error| crate::backup::BackupError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(error.to_string()),
            })?
    }

    /// The open databases, for an online backup run elsewhere (the admin socket).
    pub fn live_files(&self) -> crate::backup::LiveFiles {
        self.live_files.clone()
    }

    /// The relay's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Where `/metrics` and `/healthz` are served, if they are.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// Where the browser page (`[web]`) is served, if it is.
    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web_addr
    }

    /// DHT counters (home records stored and refused).
    pub fn dht_stats(&self) -> &DhtStats {
        self.network.dht_stats()
    }

    /// The first TCP dial address (convenient on loopback).
    pub fn tcp_dial_addr(&self) -> Option<Multiaddr> {
        self.dial_addrs()
            .into_iter()
            .find(|address| address.iter().any(|p| matches!(p, Protocol::Tcp(_))))
    }

    /// A token that stops the relay when cancelled (e.g. from a signal handler); then call
    /// [`RunningRelay::shutdown`] to wait for the stop.
    pub fn stop_token(&self) -> CancellationToken {
        self.sessions_stop.clone()
    }

    /// Stops gracefully: sessions stop reading and finish the requests they took (every
    /// accepted envelope is answered), the network closes, the store commits what is queued.
    pub async fn shutdown(self) {
        self.sessions_stop.cancel();
        self.sessions.close();
        self.sessions.wait().await;
        self.network_stop.cancel();
        self.background.close();
        self.background.wait().await;
        #[cfg(feature = "test-utils")]
        drop(self.blobs);
        // The status board holds a Store clone for its media references.
        drop(self.status);
        drop(self.live_files);
        // Every Store clone lived in a session or the acceptor; the writer now drains and exits.
        self.writer.join().await;
        tracing::info!("relay stopped");
    }
}
