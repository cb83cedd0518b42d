//! The network event loop: the one task that owns the libp2p `Swarm`.
//!
//! Sessions never touch the Swarm: inbound client streams reach them through the stream
//! behaviour's control handle, and the rest of the relay learns about the network through
//! [`NetworkHandle`].

use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, identify,
    identity::Keypair,
    noise, ping,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Protocol string relays announce through identify.
const IDENTIFY_PROTOCOL: &str = "/tidings/relay/1";

/// Most concurrent yamux streams a peer may open on one connection.
const MAX_STREAMS_PER_CONNECTION: usize = 64;

/// How long a connection with no open stream stays up.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

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
}

/// The relay's libp2p behaviours.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Raw streams for the client protocol.
    pub stream: libp2p_stream::Behaviour,
    /// Tells peers who we are and which addresses we listen on.
    pub identify: identify::Behaviour,
    /// Keeps idle connections measured and alive.
    pub ping: ping::Behaviour,
}

/// What the rest of the relay sees of the network.
#[derive(Clone)]
pub struct NetworkHandle {
    peer_id: PeerId,
    listen_addrs: watch::Receiver<Vec<Multiaddr>>,
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

    /// Waits until the swarm listens on at least `count` addresses, or the loop is gone.
    pub async fn wait_for_listen_addrs(&mut self, count: usize) -> Vec<Multiaddr> {
        let found = self
            .listen_addrs
            .wait_for(|addrs| addrs.len() >= count)
            .await
            .map(|addrs| addrs.clone());
        found.unwrap_or_else(|_| self.listen_addrs())
    }
}

/// Owns the Swarm and drives it until shutdown.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    listen_addrs: watch::Sender<Vec<Multiaddr>>,
}

/// Builds the swarm, starts listening, and returns the loop with its handle and the stream
/// control for accepting client streams.
pub fn build(
    keypair: Keypair,
    listen: &[Multiaddr],
) -> Result<(EventLoop, NetworkHandle, libp2p_stream::Control), NetworkError> {
    let peer_id = keypair.public().to_peer_id();
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            || {
                let mut config = yamux::Config::default();
                config.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
                config
            },
        )
        .map_err(|error| NetworkError::Transport(error.to_string()))?
        .with_quic()
        .with_behaviour(|key| Behaviour {
            stream: libp2p_stream::Behaviour::new(),
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
        })
        .map_err(|error| NetworkError::Transport(error.to_string()))?
        .with_swarm_config(|config| config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    for address in listen {
        swarm
            .listen_on(address.clone())
            .map_err(|error| NetworkError::Listen {
                address: address.clone(),
                reason: error.to_string(),
            })?;
    }
    let control = swarm.behaviour().stream.new_control();
    let (sender, receiver) = watch::channel(Vec::new());
    Ok((
        EventLoop {
            swarm,
            listen_addrs: sender,
        },
        NetworkHandle {
            peer_id,
            listen_addrs: receiver,
        },
        control,
    ))
}

impl EventLoop {
    /// Drives the swarm until `shutdown` fires; dropping the swarm then closes every connection.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
        tracing::debug!("network event loop stopped");
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.send_modify(|addrs| addrs.push(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs
                    .send_modify(|addrs| addrs.retain(|known| *known != address));
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "listener error");
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                tracing::debug!(%peer_id, "connection established");
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "incoming connection failed");
            }
            _ => {}
        }
    }
}
