//! Starting and stopping a whole relay: store, network loop, session acceptor.

use std::{path::PathBuf, sync::Arc, time::Duration};

use libp2p::PeerId;
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
    config::RelayConfig,
    federation::{Claims, Directory, Forwarder, Handoffs, Links},
    federation_in::{AwaitedGroups, FederationContext, FederationHandler, SenderCheck},
    ingest::RateLimits,
    invites::Invites,
    mailbox::Hub,
    network::{self, NetworkHandle},
    node_key,
    router::Router,
    session::{
        ClientContext, ClientHandler, Registration, UpgradeHandler, V1_STREAMS, V1_STREAMS_PER_PEER,
    },
    store::{Store, StoreConfig, StoreLimits},
    streams::{FrameTimeouts, StreamSlots},
};

mod error;
mod running;

pub use error::RelayError;
pub use running::RunningRelay;

/// File name of the mailbox database inside the data dir.
pub const STORE_FILE: &str = "relay.redb";

/// How long start-up waits for the listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Starts a relay from an initialized data dir.
pub async fn start(options: RelayOptions) -> Result<RunningRelay, RelayError> {
    // Whatever `launch` held (Store clones among it) is dropped before a failed start shuts the
    // relay down, or the store writer would wait for them forever.
    let (mut running, config, data_dir, listeners) = launch(options).await?;
    let mut network = running.network.clone();
    let addrs =
        tokio::time::timeout(LISTEN_TIMEOUT, network.wait_for_listen_addrs(listeners)).await;
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

/// Opens the store and starts every task; what is left for [`start`]: the config, the data
/// dir and how many listeners to wait for.
async fn launch(
    options: RelayOptions,
) -> Result<(RunningRelay, RelayConfig, PathBuf, usize), RelayError> {
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
        cache_bytes: usize::try_from(config.store_cache_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
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
    let (event_loop, network, control) =
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
    let status_retry = crate::retry::Retry::from_millis(
        config.status.forward_retry_min_ms,
        config.status.forward_retry_max_ms,
    );
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
            crate::retry::Retry::from_millis(
                config.federation.forward_retry_min_ms,
                config.federation.forward_retry_max_ms,
            ),
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
    let running = RunningRelay {
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
    Ok((running, config, data_dir, listen.len()))
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
