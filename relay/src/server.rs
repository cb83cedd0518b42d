//! Starting and stopping a whole relay: store, network loop, session acceptor.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, StreamProtocol, multiaddr::Protocol};
use tidings_protocol::{UserId, client::CLIENT_PROTOCOL, federation::FEDERATION_PROTOCOL};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::presence::{PresenceBook, PresenceTiming};
use crate::{
    config::{ConfigError, RelayConfig},
    federation::{Directory, Links, claims::ClaimLimits, forwarder::Forwarder, handoff},
    invites::Invites,
    mailbox::Hub,
    metrics::{StreamKind, StreamLimit},
    network::{self, DhtStats, NetworkError, NetworkHandle},
    node_key::{self, NodeKeyError},
    session,
    shared::Shared,
    store::{
        Store, StoreConfig, StoreError, StoreLimits, WriterHandle,
        fault::{FaultSwitch, FaultyBackend},
    },
    streams::{FrameTimeouts, Refusal, StreamSlots},
};

/// File name of the mailbox database inside the data dir.
pub const STORE_FILE: &str = "relay.redb";

/// How long start-up waits for the listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The data dir was never initialized.
    #[error("{0} is not a relay data dir; run `tidings-relay init --data-dir {0}` first")]
    NotInitialized(String),
    /// The data dir already holds a relay.
    #[error("{0} already holds a relay (relay.key exists); refusing to overwrite it")]
    AlreadyInitialized(String),
    /// Creating the data dir or writing the config failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The relay key is unusable.
    #[error(transparent)]
    NodeKey(#[from] NodeKeyError),
    /// The database could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The network could not start.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A listen address is held by another socket (often another relay on the same port).
    #[error(transparent)]
    AddressTaken(#[from] crate::listen_check::AddressTaken),
    /// A listener did not come up in time.
    #[error("listeners did not report their addresses within {LISTEN_TIMEOUT:?}")]
    ListenTimeout,
}

/// Creates a data dir with a commented config and a fresh relay key.
pub fn init(data_dir: &std::path::Path, config: &RelayConfig) -> Result<PeerId, RelayError> {
    let io = |source| RelayError::Io {
        path: data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    if data_dir.join(node_key::KEY_FILE).exists() {
        return Err(RelayError::AlreadyInitialized(
            data_dir.display().to_string(),
        ));
    }
    config.validate()?;
    let keypair = node_key::create(data_dir)?;
    let config_path = data_dir.join(crate::config::CONFIG_FILE);
    std::fs::write(&config_path, config.to_commented_toml()).map_err(|source| RelayError::Io {
        path: config_path.display().to_string(),
        source,
    })?;
    Ok(keypair.public().to_peer_id())
}

/// How to start a relay.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The data dir made by [`init`].
    pub data_dir: PathBuf,
    /// The configuration (usually [`RelayConfig::load`] of the data dir, plus overrides).
    pub config: RelayConfig,
    /// Test hook: open the store over a backend whose I/O fails while this switch is on.
    pub fault: Option<FaultSwitch>,
}

/// A started relay. Dropping it without [`RunningRelay::shutdown`] leaves its tasks running
/// until the runtime stops.
pub struct RunningRelay {
    network: NetworkHandle,
    metrics: Arc<crate::metrics::Metrics>,
    metrics_addr: Option<std::net::SocketAddr>,
    sessions_stop: CancellationToken,
    network_stop: CancellationToken,
    sessions: TaskTracker,
    background: TaskTracker,
    writer: WriterHandle,
}

/// Starts a relay from an initialized data dir.
pub async fn start(options: RelayOptions) -> Result<RunningRelay, RelayError> {
    let data_dir = options.data_dir;
    if !data_dir.join(node_key::KEY_FILE).exists() {
        return Err(RelayError::NotInitialized(data_dir.display().to_string()));
    }
    let config = options.config;
    config.validate()?;
    let listen = config.listen_addrs()?;
    crate::listen_check::ensure_free(&listen)?;
    let bootstrap = config.bootstrap_addrs()?;
    let keypair = node_key::load(&data_dir)?;
    let self_peer = keypair.public().to_peer_id();
    let hub = Arc::new(Hub::default());
    let store_config = StoreConfig {
        limits: StoreLimits {
            mailbox_max_envelopes: config.limits.mailbox_max_envelopes,
            mailbox_max_bytes: config.limits.mailbox_max_bytes,
            outbox_max_envelopes: config.limits.outbox_max_envelopes,
            outbox_max_per_user: config.limits.outbox_max_per_user,
            relay_mailbox_max_envelopes: config.limits.relay_mailbox_max_envelopes,
            dedupe_window_ms: config.limits.dedupe_window_hours.max(1) * 3600 * 1000,
        },
        self_peer: self_peer.to_string(),
    };
    let store_path = data_dir.join(STORE_FILE);
    let (store, writer) = match options.fault {
        Some(switch) => {
            let path = store_path.clone();
            let backend = move || FaultyBackend::open(&path, switch.clone());
            Store::open_with_backend(backend, store_config, hub.clone())?
        }
        None => Store::open(&store_path, store_config, hub.clone())?,
    };
    let invites = Invites::open(&data_dir)?;
    let (event_loop, mut network, mut control) =
        network::build(keypair, &listen, &bootstrap, &config.network)?;

    let sessions_stop = CancellationToken::new();
    let network_stop = CancellationToken::new();
    let sessions = TaskTracker::new();
    let background = TaskTracker::new();
    let metrics = Arc::new(crate::metrics::Metrics::new(writer.metrics()));
    let sources = Arc::new(crate::sources::PeerSources::default());
    let disk = crate::disk::DiskFloor::new(
        &data_dir,
        config.limits.min_free_disk_bytes,
        metrics.clone(),
    );
    background.spawn(
        event_loop
            .with_metrics(metrics.clone())
            .with_sources(sources.clone())
            .run(network_stop.clone()),
    );

    let shared = Arc::new(Shared {
        metrics: metrics.clone(),
        rates: crate::ingest::RateLimits::new(&config.limits, &config.registration),
        senders: crate::federation::SenderCheck::default(),
        awaited_groups: crate::federation::AwaitedGroups::default(),
        directory: Directory::new(store.clone(), network.clone()),
        links: Links::new(control.clone(), network.clone()),
        store,
        hub,
        invites,
        policy: config.registration.policy,
        registration: config.registration.clone(),
        disk: disk.clone(),
        sources,
        network: network.clone(),
        announce: config.announce.clone(),
        handoffs: Mutex::new(HashSet::new()),
        background: sessions.clone(),
        shutdown: sessions_stop.clone(),
        presence: PresenceBook::new(PresenceTiming {
            heartbeat_timeout: Duration::from_secs(config.presence.heartbeat_timeout_secs.max(1)),
            watch_ttl: Duration::from_secs(config.presence.watch_ttl_secs.max(3)),
        }),
        read_timeouts: FrameTimeouts {
            idle: Some(Duration::from_secs(config.network.stream_idle_secs.max(1))),
            frame: Duration::from_secs(config.network.frame_timeout_secs.max(1)),
        },
        claims: ClaimLimits::new(&config.claims),
    });
    let accept = |control: &mut libp2p_stream::Control, protocol: &'static str| {
        control
            .accept(StreamProtocol::new(protocol))
            .map_err(|error| NetworkError::Transport(error.to_string()))
    };
    background.spawn(accept_loop(
        shared.clone(),
        accept(&mut control, CLIENT_PROTOCOL)?,
        sessions.clone(),
        StreamSlots::new(
            config.limits.max_sessions,
            config.network.client_streams_per_device,
        ),
        StreamKind::Client,
    ));
    background.spawn(accept_loop(
        shared.clone(),
        accept(&mut control, FEDERATION_PROTOCOL)?,
        sessions.clone(),
        StreamSlots::new(
            config.network.federation_streams,
            config.network.federation_streams_per_peer,
        ),
        StreamKind::Federation,
    ));
    let undeliverable = Duration::from_secs(config.federation.undeliverable_after_secs);
    sessions.spawn(Forwarder::new(shared.clone(), undeliverable).run());
    sessions.spawn(resume(shared.clone()));
    sessions.spawn(disk.watch(sessions_stop.clone()));
    sessions.spawn(crate::presence::renew_remote_watches(shared.clone()));

    let metrics_addr = match config.metrics_addr()? {
        Some(address) => {
            let (bound, serving) =
                crate::metrics::serve(address, metrics.clone(), network_stop.clone())
                    .await
                    .map_err(|source| RelayError::Io {
                        path: format!("metrics endpoint {address}"),
                        source,
                    })?;
            background.spawn(serving);
            tracing::info!(address = %bound, "serving /metrics and /healthz");
            Some(bound)
        }
        None => None,
    };
    let running = RunningRelay {
        network: network.clone(),
        metrics,
        metrics_addr,
        sessions_stop,
        network_stop,
        sessions,
        background,
        writer,
    };
    let addrs =
        tokio::time::timeout(LISTEN_TIMEOUT, network.wait_for_listen_addrs(listen.len())).await;
    if addrs.is_err() {
        running.shutdown().await;
        return Err(RelayError::ListenTimeout);
    }
    tracing::info!(peer_id = %running.peer_id(), name = %config.name, "relay started");
    Ok(running)
}

/// Work left from before a restart: republish local users' home records to the DHT and
/// resume handing moved users' mailboxes on.
async fn resume(shared: Arc<Shared>) {
    let users = match shared.store.users().await {
        Ok(users) => users,
        Err(error) => {
            tracing::error!(%error, "cannot read users to resume");
            return;
        }
    };
    let self_peer = shared.peer_id().to_string();
    let mut moved: Vec<UserId> = Vec::new();
    for user in users {
        let Some(home) = user.home.clone() else {
            continue;
        };
        if home.relay == self_peer {
            shared.network.put_home(home).await;
        } else {
            moved.push(user.cert.user);
        }
    }
    for user in moved {
        handoff::start(&shared, user);
    }
}

/// Takes the streams of one protocol as they come: each gets a slot within its peer's
/// share and the total, or is dropped (closed) at once, so the acceptor never waits.
async fn accept_loop(
    shared: Arc<Shared>,
    mut incoming: libp2p_stream::IncomingStreams,
    sessions: TaskTracker,
    slots: Arc<StreamSlots>,
    service: StreamKind,
) {
    loop {
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            next = incoming.next() => next,
        };
        let Some((peer, stream)) = next else {
            break;
        };
        let slot = match slots.try_take(peer) {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::PeerLimit => StreamLimit::PeerLimit,
                    Refusal::Full => StreamLimit::Full,
                };
                shared.metrics.stream_refused(service, reason);
                tracing::debug!(%peer, ?service, ?reason, "stream refused");
                continue;
            }
        };
        let shared = shared.clone();
        sessions.spawn(async move {
            match service {
                StreamKind::Client => session::serve(shared, peer, stream).await,
                StreamKind::Federation => {
                    crate::federation::serve::serve(shared, peer, stream).await
                }
            }
            drop(slot);
        });
    }
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
        self.network.get_home(user).await
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
        self.network.get_home_with_stats(user).await
    }

    /// The relay's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Where `/metrics` and `/healthz` are served, if they are.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
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
        // Every Store clone lived in a session or the acceptor; the writer now drains and exits.
        self.writer.join().await;
        tracing::info!("relay stopped");
    }
}
