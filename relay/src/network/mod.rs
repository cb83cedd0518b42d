//! The network: the one task that owns the libp2p `Swarm`, and the handle the rest uses.
//!
//! Sessions never touch the Swarm: inbound streams reach them through the accept queues of
//! the `inbound` behaviour, outbound ones through libp2p-stream's control handle; DHT work
//! (publishing and looking up home records) goes through
//! [`NetworkHandle`] commands answered on oneshot channels.

mod boxed;
mod connects;
mod dht;
mod event_loop;
mod find_peer;
mod inbound;
mod record_store;
mod warm;
pub mod websocket;

use std::{sync::Arc, time::Duration};

use libp2p::{
    Multiaddr, PeerId, StreamProtocol, SwarmBuilder, allow_block_list, connection_limits, identify,
    identity::Keypair, kad, multiaddr::Protocol, noise, ping, swarm::NetworkBehaviour, tcp, yamux,
};
use tidings_protocol::{HomeRecord, UserId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::NetworkConfig;
pub use crate::metrics::DhtStats;

pub use event_loop::EventLoop;
pub(crate) use inbound::{InboundControl, IncomingStreams};
use record_store::{BoundedStore, RecordLimits};

/// What relays announce as their agent through identify.
pub const AGENT_VERSION: &str = concat!("tidings-relay/", env!("CARGO_PKG_VERSION"));

/// Protocol string relays announce through identify.
const IDENTIFY_PROTOCOL: &str = "/tidings/relay/1";

/// Kademlia protocol of the Tidings DHT (kept apart from other libp2p DHTs).
pub const KAD_PROTOCOL: &str = "/tidings/kad/1";

/// Most concurrent yamux streams a peer may open on one connection.
const MAX_STREAMS_PER_CONNECTION: usize = 64;

/// How long one DHT query may run.
const DHT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most home records one relay holds for the DHT (the byte budget usually binds first).
const MAX_DHT_RECORDS: usize = 1_000_000;

/// Longest a record stays in the store unless its home relay publishes it again (Kademlia
/// republishes every 22 hours), whatever expiry its signer chose.
pub(crate) const MAX_RECORD_HOLD: Duration = Duration::from_secs(48 * 3600);

/// Commands queued for the event loop before senders wait.
const COMMAND_QUEUE: usize = 256;

/// "A relay is connected" notices kept for a slow listener; one that falls further behind
/// is told it lagged (and treats every relay as back).
const RELAYS_UP_QUEUE: usize = 64;

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Building the transport failed.
    #[error("transport setup failed: {0}")]
    Transport(String),
    /// Listening on an address failed.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A bootstrap address lacks the `/p2p/<peer id>` part.
    #[error("bootstrap address {0} must end in /p2p/<peer id>")]
    Bootstrap(Multiaddr),
}

/// The relay's libp2p behaviours.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Raw streams for the client and federation protocols.
    pub stream: libp2p_stream::Behaviour,
    /// The DHT of relays and home records.
    pub kad: kad::Behaviour<BoundedStore>,
    /// Tells peers who we are and which addresses we listen on.
    pub identify: identify::Behaviour,
    /// Keeps idle connections measured and alive.
    pub ping: ping::Behaviour,
    /// Peers this relay refuses to be connected to (see [`NetworkHandle::set_blocked`]).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Connections per peer, in their handshake, and in total (`[network]` in the config).
    pub limits: connection_limits::Behaviour,
    /// Inbound streams of the relay's protocols, each protocol with its accept queue.
    pub inbound: inbound::Behaviour,
    /// Links to other relays, kept open while idle.
    pub warm: warm::Behaviour,
}

/// The swarm's behaviour: [`Behaviour`] with its per-connection handlers on the heap.
pub(crate) type SwarmBehaviour = boxed::Boxed<Behaviour>;

/// The connection limits of `[network]`, for libp2p's `connection_limits` behaviour.
fn connection_limits(config: &NetworkConfig) -> connection_limits::ConnectionLimits {
    connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_per_peer(Some(config.max_connections_per_peer))
        .with_max_pending_incoming(Some(config.max_pending_connections))
}

/// What one home-record lookup cost, from libp2p-kad's `QueryStats` for its query.
///
/// How far a home-record lookup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// Stop at the first record that validates (the query is finished there).
    FirstValid,
    /// Run the whole query and keep the newest valid record: after a home proved wrong, when
    /// a stale copy may be the first one met.
    Whole,
}

/// A lookup stops at the first valid record (the query is finished there), so `requests`
/// and `requests_to_first_record` are the same count when a record was found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Requests the query had sent to other relays when it answered (`QueryStats::num_requests`).
    pub requests: u32,
    /// Of those, requests that were answered (`QueryStats::num_successes`).
    pub successes: u32,
    /// Requests sent when the first valid record arrived (`num_requests` at that progress
    /// step): 0 if this relay held the record itself; `None` if none was found.
    pub requests_to_first_record: Option<u32>,
    /// Time from the query's first request to the first valid record (`QueryStats::duration`
    /// at that step): zero if this relay held the record itself.
    pub time_to_first_record: Option<Duration>,
}

/// What the event loop does for the rest of the relay.
pub(crate) enum Command {
    /// Store a (validated) home record locally and publish it to the DHT.
    PutHome {
        record: Box<HomeRecord>,
        reply: oneshot::Sender<()>,
    },
    /// Look up a valid home record of a user (and what the query cost).
    GetHome {
        user: UserId,
        lookup: Lookup,
        reply: oneshot::Sender<(Option<HomeRecord>, LookupStats)>,
    },
    /// Remember addresses of a relay (from a home record) so it can be dialed.
    AddAddresses { peer: PeerId, addrs: Vec<Multiaddr> },
    /// How many relays are in the routing table.
    RoutingPeers { reply: oneshot::Sender<usize> },
    /// Refuse (and close) every connection with a peer, or allow it again.
    SetBlocked { peer: PeerId, blocked: bool },
    /// Find where a relay can be dialed (true: connected, or addresses found and dialed).
    FindPeer {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    /// Stop holding and republishing a removed user's home record.
    ForgetHome { user: UserId },
    /// Connect to a relay (dialling `addrs` and what the DHT knows) and answer once the
    /// connection is announced, so a stream can be opened on it.
    Connect {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: connects::ConnectReply,
    },
}

/// What the rest of the relay sees of the network. Cheap to clone.
#[derive(Clone)]
pub struct NetworkHandle {
    peer_id: PeerId,
    listen_addrs: watch::Receiver<Vec<Multiaddr>>,
    commands: mpsc::Sender<Command>,
    stats: Arc<DhtStats>,
    inbound: InboundControl,
    relays_up: broadcast::Sender<PeerId>,
}

impl NetworkHandle {
    /// The relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Addresses the swarm listens on right now.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs.borrow().clone()
    }

    /// Where protocols are registered to accept inbound streams.
    pub(crate) fn inbound(&self) -> InboundControl {
        self.inbound.clone()
    }

    /// Notices of relays that connected and identified themselves (a relay that was down
    /// may be back: a hint for whoever backs off from it).
    pub(crate) fn relays_up(&self) -> broadcast::Receiver<PeerId> {
        self.relays_up.subscribe()
    }

    /// DHT counters.
    pub fn dht_stats(&self) -> &DhtStats {
        &self.stats
    }

    /// Waits until the swarm listens on at least `count` addresses, or the loop is gone.
    pub async fn wait_for_listen_addrs(&mut self, count: usize) -> Vec<Multiaddr> {
        let found = self
            .listen_addrs
            .wait_for(|addrs| addrs.len() >= count)
            .await
            .map(|addrs| addrs.clone());
        found.unwrap_or_else(|_| self.listen_addrs())
    }

    /// Stores and publishes a home record the caller has validated.
    pub(crate) async fn put_home(&self, record: HomeRecord) {
        let (reply, done) = oneshot::channel();
        let command = Command::PutHome {
            record: Box::new(record),
            reply,
        };
        if self.commands.send(command).await.is_ok() {
            let _ = done.await;
        }
    }

    /// A valid home record of `user` in the DHT, if any: the first found, or with
    /// [`Lookup::Whole`] the newest of all the query met.
    pub async fn get_home(&self, user: UserId, lookup: Lookup) -> Option<HomeRecord> {
        self.get_home_with_stats(user, lookup).await.0
    }

    /// As [`NetworkHandle::get_home`], with what libp2p-kad counted for the query (for
    /// benchmarks). A caller that joins a lookup already running gets that query's counts.
    pub async fn get_home_with_stats(
        &self,
        user: UserId,
        lookup: Lookup,
    ) -> (Option<HomeRecord>, LookupStats) {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::GetHome {
                user,
                lookup,
                reply,
            })
            .await
            .is_err()
        {
            return (None, LookupStats::default());
        }
        answer.await.unwrap_or_default()
    }

    /// Stops holding and republishing `user`'s home record (the user was removed here).
    pub(crate) async fn forget_home(&self, user: UserId) {
        let _ = self.commands.send(Command::ForgetHome { user }).await;
    }

    /// How many other relays are in the DHT routing table.
    pub async fn routing_peers(&self) -> usize {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::RoutingPeers { reply })
            .await
            .is_err()
        {
            return 0;
        }
        answer.await.unwrap_or(0)
    }

    /// Cuts this relay off from `peer` (open connections close, new ones in either direction
    /// are refused), or lets it connect again. What waits for that peer stays queued in the
    /// outbox until the link is back: the fault injection of `tidings-testnet scenario chaos`
    /// uses it to partition relays.
    pub async fn set_blocked(&self, peer: PeerId, blocked: bool) {
        let _ = self
            .commands
            .send(Command::SetBlocked { peer, blocked })
            .await;
    }

    /// Makes sure `peer` can be dialed: true when connected already, or when a Kademlia walk
    /// towards it found addresses (a dial with them is then under way). A relay's routing
    /// table holds only some of a large network, so an id with no known address is looked up.
    pub(crate) async fn find_peer(&self, peer: PeerId) -> bool {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::FindPeer { peer, reply })
            .await
            .is_err()
        {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Connects to the relay `peer` (at `addrs`, and wherever the DHT says) unless connected
    /// already: Ok once a connection is up and announced, so that a stream opened next uses
    /// it; the dial's error otherwise.
    pub(crate) async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Connect { peer, addrs, reply })
            .await
            .map_err(|_| "the network is shut down".to_string())?;
        answer
            .await
            .map_err(|_| "the network is shut down".to_string())?
    }

    /// Remembers where a relay can be dialed.
    pub(crate) async fn add_addresses(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let _ = self
            .commands
            .send(Command::AddAddresses { peer, addrs })
            .await;
    }
}

/// Splits `/.../p2p/<peer>` into the peer and the address before it.
pub(crate) fn split_peer(address: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut bare = address.clone();
    match bare.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, bare)),
        _ => None,
    }
}

/// Yamux as every stream-multiplexed transport (TCP, WebSocket) uses it.
fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
    config
}

/// Builds the swarm, starts listening and dialing the bootstrap relays, and returns the loop
/// with its handle (which also registers protocols to accept) and the stream control for
/// opening streams. `websocket_tls` serves `/tls/ws` listen addresses.
pub fn build(
    keypair: Keypair,
    listen: &[Multiaddr],
    bootstrap: &[Multiaddr],
    limits: &NetworkConfig,
    websocket_tls: Option<libp2p::websocket::tls::Config>,
) -> Result<(EventLoop, NetworkHandle, libp2p_stream::Control), NetworkError> {
    let peer_id = keypair.public().to_peer_id();
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux_config,
        )
        .map_err(|error| NetworkError::Transport(error.to_string()))?
        .with_quic()
        .with_other_transport(|key| {
            websocket::transport(key, websocket_tls, yamux_config())
                .map_err(|error| Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|error| NetworkError::Transport(error.to_string()))?
        .with_behaviour(|key| {
            let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
            kad_config
                .set_record_filtering(kad::StoreInserts::FilterBoth)
                .set_record_ttl(Some(MAX_RECORD_HOLD))
                .set_query_timeout(DHT_QUERY_TIMEOUT);
            let store_config = kad::store::MemoryStoreConfig {
                max_records: MAX_DHT_RECORDS,
                max_value_bytes: tidings_protocol::limits::MAX_HOME_RECORD_BYTES,
                ..Default::default()
            };
            let record_limits = RecordLimits {
                max_bytes: usize::try_from(limits.dht_store_kib.saturating_mul(1024))
                    .unwrap_or(usize::MAX),
                per_publisher: usize::try_from(limits.dht_records_per_peer).unwrap_or(usize::MAX),
            };
            let store = BoundedStore::new(peer_id, store_config, record_limits);
            let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
            // Relays always answer DHT queries, even without a confirmed public address.
            kad.set_mode(Some(kad::Mode::Server));
            boxed::Boxed::new(Behaviour {
                stream: libp2p_stream::Behaviour::new(),
                kad,
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                        .with_agent_version(AGENT_VERSION.into()),
                ),
                ping: ping::Behaviour::default(),
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(connection_limits(limits)),
                inbound: inbound::Behaviour::new(limits.accept_queue),
                warm: warm::Behaviour::default(),
            })
        })
        .map_err(|error| NetworkError::Transport(error.to_string()))?
        .with_swarm_config(|config| {
            config.with_idle_connection_timeout(Duration::from_secs(
                limits.idle_connection_secs.max(1),
            ))
        })
        .build();
    for address in listen {
        swarm
            .listen_on(address.clone())
            .map_err(|error| NetworkError::Listen {
                address: address.clone(),
                reason: error.to_string(),
            })?;
    }
    for address in bootstrap {
        let (peer, bare) =
            split_peer(address).ok_or_else(|| NetworkError::Bootstrap(address.clone()))?;
        if peer == peer_id {
            continue;
        }
        swarm.behaviour_mut().kad.add_address(&peer, bare);
        if let Err(error) = swarm.dial(address.clone()) {
            tracing::warn!(%address, %error, "cannot dial bootstrap relay");
        }
    }
    let control = swarm.behaviour().stream.new_control();
    let inbound = swarm.behaviour().inbound.control();
    let (listen_tx, listen_rx) = watch::channel(Vec::new());
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let stats = Arc::new(DhtStats::default());
    let (relays_up, _) = broadcast::channel(RELAYS_UP_QUEUE);
    let event_loop = EventLoop::new(
        swarm,
        commands_rx,
        listen_tx,
        stats.clone(),
        relays_up.clone(),
    );
    Ok((
        event_loop,
        NetworkHandle {
            peer_id,
            listen_addrs: listen_rx,
            commands: commands_tx,
            stats,
            inbound,
            relays_up,
        },
        control,
    ))
}
