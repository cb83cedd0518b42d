//! The page's libp2p swarm: the browser's WebSocket, Noise and Yamux, as the relay speaks them.

use std::time::Duration;

use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, Transport, core::muxing::StreamMuxerBox,
    core::upgrade::Version, multiaddr::Protocol, noise, ping, swarm::NetworkBehaviour,
    websocket_websys, yamux,
};

/// How long the probe's connection stays open with no stream.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// What the page's swarm does: client-protocol streams and pings.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub stream: libp2p_stream::Behaviour,
    pub ping: ping::Behaviour,
}

/// A swarm with a fresh identity that dials over the browser's WebSocket.
pub fn new_swarm() -> Result<Swarm<Behaviour>, String> {
    let swarm = SwarmBuilder::with_new_identity()
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                websocket_websys::Transport::default()
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer))),
            )
        })
        .map_err(|error| error.to_string())?
        .with_behaviour(|_| Behaviour {
            stream: libp2p_stream::Behaviour::new(),
            ping: ping::Behaviour::default(),
        })
        .map_err(|error| error.to_string())?
        .with_swarm_config(|config| config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

/// The relay address `text` (a `/ws` or `/tls/ws` multiaddr ending in `/p2p/<peer id>`) and
/// the relay's peer id.
pub fn relay_address(text: &str) -> Result<(Multiaddr, PeerId), String> {
    let address: Multiaddr = text
        .parse()
        .map_err(|error| format!("not a multiaddr: {error}"))?;
    let peer = address
        .iter()
        .find_map(|protocol| match protocol {
            Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .ok_or("the address must end in /p2p/<peer id>")?;
    Ok((address, peer))
}
