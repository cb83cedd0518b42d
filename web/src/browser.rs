//! The wasm-bindgen API of the page: connect to a relay over `/ws` and ask it one question.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    Multiaddr, StreamProtocol, SwarmBuilder, Transport, core::muxing::StreamMuxerBox,
    core::upgrade::Version, noise, ping, swarm::NetworkBehaviour, swarm::SwarmEvent,
    websocket_websys, yamux,
};
use tidings_protocol::{
    client::{CLIENT_PROTOCOL, ClientFrame, RelayFrame, Request},
    framing,
};
use wasm_bindgen::prelude::*;

/// How long the whole probe (dial, handshake, one answer) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(NetworkBehaviour)]
struct Behaviour {
    stream: libp2p_stream::Behaviour,
    ping: ping::Behaviour,
}

/// Dials the relay at `address` (a `/ws` or `/tls/ws` multiaddr ending in `/p2p/<peer id>`)
/// with a fresh identity, opens a `/tidings/client/2` stream, sends a harmless request (a
/// subscription, which a relay refuses for an unregistered device) and returns the relay's
/// answer as text.
#[wasm_bindgen(js_name = probeRelay)]
pub async fn probe_relay(address: String) -> Result<String, JsError> {
    let address: Multiaddr = address
        .parse()
        .map_err(|error| JsError::new(&format!("not a multiaddr: {error}")))?;
    let probe = probe(address);
    let timeout = futures_timer::Delay::new(PROBE_TIMEOUT);
    futures::pin_mut!(probe);
    match futures::future::select(probe, timeout).await {
        futures::future::Either::Left((answer, _)) => answer.map_err(|error| JsError::new(&error)),
        futures::future::Either::Right(_) => Err(JsError::new("the relay did not answer in time")),
    }
}

async fn probe(address: Multiaddr) -> Result<String, String> {
    let peer = address
        .iter()
        .find_map(|protocol| match protocol {
            libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .ok_or("the address must end in /p2p/<peer id>")?;
    let mut swarm = SwarmBuilder::with_new_identity()
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
        .build();
    let mut control = swarm.behaviour().stream.new_control();
    swarm.dial(address).map_err(|error| error.to_string())?;
    // The swarm must be polled for the connection (and later the stream) to make progress.
    let (connected_tx, connected_rx) = futures::channel::oneshot::channel();
    let mut connected_tx = Some(connected_tx);
    wasm_bindgen_futures::spawn_local(async move {
        while let Some(event) = swarm.next().await {
            match event {
                SwarmEvent::ConnectionEstablished { .. } => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(Err(error.to_string()));
                    }
                }
                _ => {}
            }
        }
    });
    connected_rx
        .await
        .map_err(|_| "the network task stopped".to_string())??;
    let mut stream = control
        .open_stream(peer, StreamProtocol::new(CLIENT_PROTOCOL))
        .await
        .map_err(|error| error.to_string())?;
    let request = ClientFrame::Request {
        id: 1,
        body: Request::Subscribe,
    };
    framing::write_frame(&mut stream, &request)
        .await
        .map_err(|error| error.to_string())?;
    let mut frame = Vec::new();
    let got = framing::read_frame(&mut stream, &mut frame)
        .await
        .map_err(|error| error.to_string())?;
    if !got {
        return Err("the relay closed the stream without answering".into());
    }
    let answer = RelayFrame::decode(&frame).map_err(|error| error.to_string())?;
    let _ = stream.close().await;
    let _ = stream.read(&mut [0u8; 1]).await;
    Ok(format!("{answer:?}"))
}
