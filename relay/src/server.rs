//! Starting and stopping a whole relay: store, network loop, session acceptor.

use std::{path::PathBuf, sync::Arc, time::Duration};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use tidings_protocol::{
    UserId,
    blob::{BLOB_FEDERATION_PROTOCOL, BLOB_PROTOCOL},
    client::{CLIENT_PROTOCOL, CLIENT_PROTOCOL_V1},
    federation::FEDERATION_PROTOCOL,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::presence::{Presence, PresenceTiming};
use crate::{
    blobs::{BlobContext, BlobHandler, BlobStore, Fetcher},
    config::{ConfigError, RelayConfig},
    federation::{Claims, Directory, Forwarder, Handoffs, Links},
    federation_in::{AwaitedGroups, FederationContext, FederationHandler, SenderCheck},
    ingest::RateLimits,
    invites::Invites,
    mailbox::Hub,
    network::{self, DhtStats, NetworkError, NetworkHandle},
    node_key::{self, NodeKeyError},
    router::Router,
    session::{
        ClientContext, ClientHandler, Registration, UpgradeHandler, V1_STREAMS, V1_STREAMS_PER_PEER,
    },
    store::{Store, StoreConfig, StoreError, StoreLimits, WriterHandle},
    streams::{FrameTimeouts, StreamSlots},
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
    /// The media blob store could not be opened or cleaned up.
    #[error("media blobs: {0}")]
    Blobs(String),
    /// Push could not start.
    #[error(transparent)]
    Push(#[from] crate::push::PushError),
    /// A listener did not come up in time.
    #[error("listeners did not report their addresses within {LISTEN_TIMEOUT:?}")]
    ListenTimeout,
    /// The TLS certificate or key for `/tls/ws` cannot be used.
    #[error("websocket TLS: {0}")]
    Tls(#[from] crate::network::websocket::TlsError),
    /// The old files could not be copied aside before a migration (nothing was migrated).
    #[error(
        "copying the data dir aside before migrating it: {0} (free space, or start with \
         --no-backup-before-upgrade)"
    )]
    PreUpgradeCopy(#[source] crate::backup::BackupError),
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
    crate::push::VapidKey::create(data_dir)?;
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
    #[cfg(feature = "test-utils")]
    pub fault: Option<crate::store::fault::FaultSwitch>,
    /// The clock status expiry is judged by (tests pass one they advance).
    pub clock: tidings_protocol::status::Clock,
    /// Copy the database files aside before a schema migration (`run
    /// --no-backup-before-upgrade` turns it off).
    pub backup_before_upgrade: bool,
}

impl RelayOptions {
    /// Options to start the relay of `data_dir` with `config`.
    pub fn new(data_dir: PathBuf, config: RelayConfig) -> Self {
        Self {
            data_dir,
            config,
            #[cfg(feature = "test-utils")]
            fault: None,
            clock: tidings_protocol::status::Clock::system(),
            backup_before_upgrade: true,
        }
    }
}

/// A started relay. Dropping it without [`RunningRelay::shutdown`] leaves its tasks running
/// until the runtime stops.
pub struct RunningRelay {
    network: NetworkHandle,
    metrics: Arc<crate::metrics::Metrics>,
    metrics_addr: Option<std::net::SocketAddr>,
    /// Where the browser page is served, if it is.
    web_addr: Option<std::net::SocketAddr>,
    sessions_stop: CancellationToken,
    network_stop: CancellationToken,
    sessions: TaskTracker,
    background: TaskTracker,
    writer: WriterHandle,
    /// For the test hook that runs blob garbage collection on demand.
    #[cfg(feature = "test-utils")]
    blobs: BlobStore,
    /// Statuses (their clock, the sweep).
    status: crate::status::StatusBoard,
    /// The open databases, for online backups.
    live_files: crate::backup::LiveFiles,
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
    let vapid = crate::push::VapidKey::load_or_create(&data_dir)?;
    let self_peer = keypair.public().to_peer_id();
    let hub = Arc::new(Hub::default());
    let store_config = StoreConfig {
        limits: StoreLimits::from(&config.limits),
        self_peer: self_peer.to_string(),
    };
    crate::backup::copy_before_migration(&data_dir, options.backup_before_upgrade)
        .map_err(RelayError::PreUpgradeCopy)?;
    let store_path = data_dir.join(STORE_FILE);
    #[cfg(feature = "test-utils")]
    let (store, writer) =
        Store::open_faulty(&store_path, options.fault, store_config, hub.clone())?;
    #[cfg(not(feature = "test-utils"))]
    let (store, writer) = Store::open(&store_path, store_config, hub.clone())?;
    let invites = Invites::open(&data_dir)?;
    let status = crate::status::StatusBoard::open(&data_dir, options.clock.clone(), store.clone())?;
    let websocket_tls = match config.websocket.tls_files(&data_dir) {
        Some((certificate, key)) => Some(network::websocket::load_tls(&certificate, &key)?),
        None => None,
    };
    let live_files = crate::backup::LiveFiles::new(
        data_dir.clone(),
        store.database_getter(),
        status.database(),
        invites.database(),
    );
    let (event_loop, mut network, control) =
        network::build(keypair, &listen, &bootstrap, &config.network, websocket_tls)?;

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

    let blobs = BlobStore::open(
        &data_dir,
        store.clone(),
        config.blobs.clone(),
        metrics.clone(),
    )
    .map_err(|error| RelayError::Blobs(error.to_string()))?;
    crate::blobs::start_up_cleanup(&blobs)
        .await
        .map_err(|error| RelayError::Blobs(error.to_string()))?;

    let push = if config.push.enabled {
        let (push, trigger) = crate::push::Push::start(
            &config.push,
            vapid,
            store.clone(),
            metrics.push.clone(),
            &sessions,
            sessions_stop.clone(),
        )
        .await?;
        hub.set_push(trigger);
        push
    } else {
        crate::push::Push::disabled()
    };

    let (directory, home_cache) = Directory::new(store.clone(), network.clone());
    background.spawn(home_cache.run(network_stop.clone()));
    let (links, links_actor) = Links::new(control.clone(), network.clone());
    background.spawn(links_actor.run(network_stop.clone()));
    let timing = PresenceTiming {
        heartbeat_timeout: Duration::from_secs(config.presence.heartbeat_timeout_secs.max(1)),
        watch_ttl: Duration::from_secs(config.presence.watch_ttl_secs.max(3)),
    };
    let (presence, book) = Presence::new(
        timing,
        store.clone(),
        directory.clone(),
        links.clone(),
        sessions.clone(),
    );
    background.spawn(book.run(network_stop.clone()));
    let self_peer = network.peer_id();
    let claims = Claims::new(
        &config.claims,
        store.clone(),
        metrics.clone(),
        directory.clone(),
    );
    let handoffs = Handoffs::new(
        store.clone(),
        links.clone(),
        self_peer.to_string(),
        sessions.clone(),
        sessions_stop.clone(),
    );
    let read_timeouts = FrameTimeouts {
        idle: Some(Duration::from_secs(config.network.stream_idle_secs.max(1))),
        frame: Duration::from_secs(config.network.frame_timeout_secs.max(1)),
    };
    let RateLimits {
        users: user_rate,
        relays: relay_rate,
        descriptors: descriptor_rate,
        registrations: registration_rate,
    } = RateLimits::new(&config.limits, &config.registration);
    let live_devices: Arc<crate::session::live::LiveDevices> = Arc::default();
    let admin_push = push.clone();
    let client = ClientHandler::new(ClientContext {
        store: store.clone(),
        hub,
        metrics: metrics.clone(),
        disk: disk.clone(),
        network: network.clone(),
        announce: config.announce.clone(),
        directory: directory.clone(),
        links: links.clone(),
        presence: presence.clone(),
        claims: claims.clone(),
        handoffs: handoffs.clone(),
        registration: Registration {
            policy: config.registration.policy,
            config: config.registration.clone(),
            invites,
            sources,
            rate: registration_rate,
        },
        user_rate,
        read_timeouts,
        shutdown: sessions_stop.clone(),
        link_slots: crate::link_slots::LinkSlots::new(),
        live_devices: live_devices.clone(),
        push,
        status: status.clone(),
    });
    let federation = FederationHandler::new(FederationContext {
        store: store.clone(),
        metrics: metrics.clone(),
        disk: disk.clone(),
        relay_rate,
        descriptor_rate,
        claims,
        directory: directory.clone(),
        presence: presence.clone(),
        senders: SenderCheck::default(),
        awaited_groups: AwaitedGroups::default(),
        read_timeouts,
        shutdown: sessions_stop.clone(),
        self_peer,
        status: status.clone(),
    });
    let blob_handler = BlobHandler::new(BlobContext {
        blobs: blobs.clone(),
        disk: disk.clone(),
        read_timeouts,
        shutdown: sessions_stop.clone(),
        self_peer: self_peer.to_string(),
        fetcher: Fetcher::new(control.clone(), network.clone()),
        relay_rate: crate::blobs::relay_byte_rate(&config.blobs),
    });
    let blob_federation = blob_handler.federation();
    Router::builder(
        network.inbound(),
        sessions.clone(),
        sessions_stop.clone(),
        metrics.clone(),
    )
    .accept(
        CLIENT_PROTOCOL,
        client,
        StreamSlots::new(
            config.limits.max_sessions,
            config.network.client_streams_per_device,
        ),
    )?
    .accept(
        CLIENT_PROTOCOL_V1,
        UpgradeHandler,
        StreamSlots::new(V1_STREAMS, V1_STREAMS_PER_PEER),
    )?
    .accept(
        FEDERATION_PROTOCOL,
        federation,
        StreamSlots::new(
            config.network.federation_streams,
            config.network.federation_streams_per_peer,
        ),
    )?
    .accept(
        BLOB_PROTOCOL,
        blob_handler,
        StreamSlots::new(
            config.blobs.max_transfers,
            config.blobs.max_transfers_per_device,
        ),
    )?
    .accept(
        BLOB_FEDERATION_PROTOCOL,
        blob_federation,
        StreamSlots::new(
            config.blobs.max_transfers,
            config.blobs.max_transfers_per_device,
        ),
    )?
    .spawn(&background);
    sessions.spawn(crate::blobs::run_gc(blobs.clone(), sessions_stop.clone()));
    sessions.spawn(status.clone().run_sweep(
        Duration::from_secs(config.status.sweep_interval_secs.max(1)),
        sessions_stop.clone(),
    ));
    let status_retry = crate::status::Retry {
        min: Duration::from_millis(config.status.forward_retry_min_ms.max(1)),
        max: Duration::from_millis(config.status.forward_retry_max_ms.max(1)),
    };
    sessions.spawn(
        status
            .forwarder(directory.clone(), links.clone(), status_retry)
            .run(sessions_stop.clone()),
    );
    let undeliverable = Duration::from_secs(config.federation.undeliverable_after_secs);
    sessions.spawn(
        Forwarder::new(
            store.clone(),
            directory,
            links,
            metrics.clone(),
            sessions_stop.clone(),
            undeliverable,
        )
        .run(),
    );
    sessions.spawn(resume(store.clone(), network.clone(), handoffs));
    sessions.spawn(disk.watch(sessions_stop.clone()));
    sessions.spawn(presence.renew_remote_watches(sessions_stop.clone()));

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
    let admin = crate::admin::AdminContext::new(
        store.clone(),
        network.clone(),
        live_devices,
        blobs.clone(),
        admin_push,
        live_files.clone(),
        &config,
    );
    crate::admin::start(admin, &sessions, sessions_stop.clone()).await;
    let mut running = RunningRelay {
        network: network.clone(),
        metrics,
        metrics_addr,
        web_addr: None,
        sessions_stop,
        network_stop,
        sessions,
        background,
        writer,
        #[cfg(feature = "test-utils")]
        blobs,
        status,
        live_files,
    };
    let addrs =
        tokio::time::timeout(LISTEN_TIMEOUT, network.wait_for_listen_addrs(listen.len())).await;
    if addrs.is_err() {
        running.shutdown().await;
        return Err(RelayError::ListenTimeout);
    }
    // The page names the relay's addresses, so it is served once the listeners are up.
    let stop = running.network_stop.clone();
    match crate::web::start(&config, &data_dir, &network, stop, &running.background).await {
        Ok(web_addr) => running.web_addr = web_addr,
        Err(error) => {
            running.shutdown().await;
            return Err(error);
        }
    }
    tracing::info!(peer_id = %running.peer_id(), name = %config.name, "relay started");
    Ok(running)
}

/// Work left from before a restart: republish local users' home records to the DHT and
/// resume handing moved users' mailboxes on.
async fn resume(store: Store, network: NetworkHandle, handoffs: Handoffs) {
    let users = match store.users().await {
        Ok(users) => users,
        Err(error) => {
            tracing::error!(%error, "cannot read users to resume");
            return;
        }
    };
    let self_peer = network.peer_id().to_string();
    let mut moved: Vec<UserId> = Vec::new();
    for (user, record) in users {
        let Some(home) = record.home.clone() else {
            continue;
        };
        if home.relay == self_peer {
            network.put_home(home).await;
        } else {
            moved.push(user);
        }
    }
    for user in moved {
        handoffs.start(user);
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
