//! The client's libp2p side: one task owns the `Swarm`; the rest asks it to dial.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder,
    identity::Keypair,
    noise, ping,
    swarm::{ConnectionId, DialError, NetworkBehaviour, SwarmEvent, dial_opts::DialOpts},
    yamux,
};
use tokio::sync::{mpsc, oneshot};

/// How long a connection with no open stream stays up.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the network side failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    /// Building the transport failed.
    #[error("transport setup failed: {0}")]
    Transport(String),
    /// The relay could not be reached.
    #[error("cannot reach the relay at {address}: {reason}")]
    Dial {
        /// Where we tried.
        address: Multiaddr,
        /// Why it failed.
        reason: String,
    },
    /// The network task stopped.
    #[error("the network task stopped")]
    Stopped,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    stream: libp2p_stream::Behaviour,
    ping: ping::Behaviour,
}

impl Behaviour {
    fn new() -> Self {
        Self {
            stream: libp2p_stream::Behaviour::new(),
            ping: ping::Behaviour::default(),
        }
    }
}

enum Command {
    Dial {
        address: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
}

/// Cloneable handle to the network task.
#[derive(Clone)]
pub struct Network {
    commands: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
}

impl Network {
    /// Starts the network task with the device key as the libp2p identity.
    pub fn start(keypair: Keypair) -> Result<Network, NetError> {
        Self::start_trusting(keypair, &[])
    }

    /// As [`Network::start`], also trusting the DER certificates `trusted` for `/tls/ws`
    /// relays (see [`crate::websocket::TRUSTED_CERTS_FILE`]). In the browser, which checks
    /// TLS certificates itself, `trusted` is not used.
    pub fn start_trusting(keypair: Keypair, trusted: &[Vec<u8>]) -> Result<Network, NetError> {
        let swarm = build_swarm(keypair, trusted)?;
        let control = swarm.behaviour().stream.new_control();
        let (commands, receiver) = mpsc::channel(16);
        crate::runtime::spawn(
            EventLoop {
                swarm,
                commands: receiver,
                dials: HashMap::new(),
            }
            .run(),
        );
        Ok(Network { commands, control })
    }

    /// Connects to the relay at `address`; returns its peer id once the connection is up.
    pub async fn dial(&self, address: Multiaddr) -> Result<PeerId, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Dial { address, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    /// A handle for opening streams to connected peers.
    pub fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }
}

/// The native swarm: TCP, QUIC and WebSocket (`/ws`, `/tls/ws`, DNS names), each with Noise
/// and Yamux (QUIC has its own), on tokio.
#[cfg(not(target_arch = "wasm32"))]
fn build_swarm(keypair: Keypair, trusted: &[Vec<u8>]) -> Result<Swarm<Behaviour>, NetError> {
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|error| NetError::Transport(error.to_string()))?
        .with_quic()
        .with_other_transport(|key| {
            crate::websocket::transport(key, trusted)
                .map_err(|error| Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|error| NetError::Transport(error.to_string()))?
        .with_behaviour(|_| Behaviour::new())
        .map_err(|error| NetError::Transport(error.to_string()))?
        .with_swarm_config(|config| config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build())
}

/// The browser's swarm: the browser's WebSocket (`/ws`, `/tls/ws`; the browser checks the
/// certificate), Noise and Yamux, driven by the page's event loop.
#[cfg(target_arch = "wasm32")]
fn build_swarm(keypair: Keypair, _trusted: &[Vec<u8>]) -> Result<Swarm<Behaviour>, NetError> {
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_wasm_bindgen()
        .with_other_transport(browser_transport)
        .map_err(|error| NetError::Transport(error.to_string()))?
        .with_behaviour(|_| Behaviour::new())
        .map_err(|error| NetError::Transport(error.to_string()))?
        .with_swarm_config(|config| config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build())
}

/// The browser's transport to a relay: its WebSocket API, then Noise (authenticating the relay's
/// peer id end to end, whatever TLS proxy sits between) and Yamux.
#[cfg(target_arch = "wasm32")]
pub fn browser_transport(
    keypair: &Keypair,
) -> Result<
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use libp2p::{Transport, core::muxing::StreamMuxerBox, core::upgrade::Version};
    Ok(libp2p::websocket_websys::Transport::default()
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(keypair)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, NetError>>)>,
}

impl EventLoop {
    async fn run(mut self) {
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    // Every handle is gone: stop and close the connections.
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial { address, reply } => {
                let peer = address.iter().find_map(|protocol| match protocol {
                    libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
                    _ => None,
                });
                if let Some(peer) = peer
                    && self.swarm.is_connected(&peer)
                {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                let opts = match peer {
                    Some(peer) => DialOpts::peer_id(peer)
                        .addresses(vec![address.clone()])
                        .build(),
                    None => DialOpts::unknown_peer_id().address(address.clone()).build(),
                };
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (address, reply));
                    }
                    Err(error) => {
                        let _ = reply.send(Err(dial_error(address, &error)));
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some((address, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(dial_error(address, &error)));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
            }
            _ => {}
        }
    }
}

fn dial_error(address: Multiaddr, error: &DialError) -> NetError {
    // The innermost cause ("Connection refused (os error 111)") says it best.
    let mut cause: &dyn std::error::Error = error;
    if let DialError::Transport(attempts) = error
        && let Some((_, last)) = attempts.last()
    {
        cause = last;
    }
    while let Some(source) = cause.source() {
        cause = source;
    }
    NetError::Dial {
        address,
        reason: cause.to_string(),
    }
}
