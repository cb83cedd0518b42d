//! The wasm-bindgen API of the page: connect to a relay over `/ws` and ask it one question.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, FutureExt, StreamExt};
use libp2p::{StreamProtocol, swarm::SwarmEvent};
use tidings_protocol::{
    client::{CLIENT_PROTOCOL, ClientFrame, RelayFrame, Request},
    framing,
};
use wasm_bindgen::prelude::*;

use crate::swarm::{new_swarm, relay_address};

/// How long the whole probe (dial, handshake, one answer) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Dials the relay at `address` (a `/ws` or `/tls/ws` multiaddr ending in `/p2p/<peer id>`)
/// with a fresh identity, opens a `/tidings/client/2` stream, sends a harmless request (a
/// subscription, which a relay refuses for an unregistered device) and returns the relay's
/// answer as text.
#[wasm_bindgen(js_name = probeRelay)]
pub async fn probe_relay(address: String) -> Result<String, JsError> {
    let probe = probe(&address);
    let timeout = futures_timer::Delay::new(PROBE_TIMEOUT);
    futures::pin_mut!(probe);
    match futures::future::select(probe, timeout).await {
        futures::future::Either::Left((answer, _)) => answer.map_err(|error| JsError::new(&error)),
        futures::future::Either::Right(_) => Err(JsError::new("the relay did not answer in time")),
    }
}

async fn probe(address: &str) -> Result<String, String> {
    let (address, peer) = relay_address(address)?;
    let mut swarm = new_swarm()?;
    let mut control = swarm.behaviour().stream.new_control();
    swarm.dial(address).map_err(|error| error.to_string())?;
    // The swarm must be polled for the connection (and later the stream) to make progress,
    // until the probe is over (`_done` drops).
    let (connected_tx, connected_rx) = futures::channel::oneshot::channel();
    let (_done, finished) = futures::channel::oneshot::channel::<()>();
    wasm_bindgen_futures::spawn_local(async move {
        let mut connected_tx = Some(connected_tx);
        let mut finished = finished.fuse();
        loop {
            let event = futures::select! {
                _ = finished => return,
                event = swarm.select_next_some() => event,
            };
            let outcome = match event {
                SwarmEvent::ConnectionEstablished { .. } => Ok(()),
                SwarmEvent::OutgoingConnectionError { error, .. } => Err(error.to_string()),
                _ => continue,
            };
            if let Some(tx) = connected_tx.take() {
                let _ = tx.send(outcome);
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
