//! A lasting link to the home relay: dials, reports each change of state to the page, and
//! dials again (with a growing pause) when the connection is lost.

use std::time::Duration;

use futures::{FutureExt, StreamExt, channel::oneshot};
use libp2p::{Multiaddr, swarm::SwarmEvent};
use wasm_bindgen::prelude::*;

use crate::swarm::{new_swarm, relay_address};

/// The pause before the first dial again after a loss.
const FIRST_REDIAL_PAUSE: Duration = Duration::from_millis(250);

/// The longest pause between two dials.
const MAX_REDIAL_PAUSE: Duration = Duration::from_secs(4);

/// A link kept to one relay until closed (or dropped).
#[wasm_bindgen]
pub struct RelayLink {
    stop: Option<oneshot::Sender<()>>,
}

#[wasm_bindgen]
impl RelayLink {
    /// Starts linking to the relay at `address` (`.../ws/p2p/<peer id>`). `on_state` is
    /// called with `("connecting" | "connected" | "disconnected" | "failed", detail)`.
    #[wasm_bindgen(constructor)]
    pub fn new(address: String, on_state: js_sys::Function) -> Result<RelayLink, JsError> {
        let (address, _) = relay_address(&address).map_err(|error| JsError::new(&error))?;
        let (stop, stopped) = oneshot::channel();
        wasm_bindgen_futures::spawn_local(keep_linked(address, on_state, stopped));
        Ok(RelayLink { stop: Some(stop) })
    }

    /// Ends the link (the connection closes).
    pub fn close(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Tells the page the link's state.
fn report(on_state: &js_sys::Function, state: &str, detail: &str) {
    let _ = on_state.call2(&JsValue::NULL, &state.into(), &detail.into());
}

async fn keep_linked(
    address: Multiaddr,
    on_state: js_sys::Function,
    stopped: oneshot::Receiver<()>,
) {
    let mut swarm = match new_swarm() {
        Ok(swarm) => swarm,
        Err(error) => return report(&on_state, "failed", &error),
    };
    let mut stopped = stopped.fuse();
    let mut pause = FIRST_REDIAL_PAUSE;
    loop {
        report(&on_state, "connecting", &address.to_string());
        if let Err(error) = swarm.dial(address.clone()) {
            report(&on_state, "disconnected", &error.to_string());
        } else {
            loop {
                futures::select! {
                    _ = stopped => return,
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { .. } => {
                            pause = FIRST_REDIAL_PAUSE;
                            report(&on_state, "connected", &address.to_string());
                        }
                        SwarmEvent::ConnectionClosed { num_established: 0, cause, .. } => {
                            let why = cause.map(|cause| cause.to_string());
                            report(&on_state, "disconnected", &why.unwrap_or_default());
                            break;
                        }
                        SwarmEvent::OutgoingConnectionError { error, .. } => {
                            report(&on_state, "disconnected", &error.to_string());
                            break;
                        }
                        _ => {}
                    },
                }
            }
        }
        futures::select! {
            _ = stopped => return,
            _ = futures_timer::Delay::new(pause).fuse() => {}
        }
        pause = (pause * 2).min(MAX_REDIAL_PAUSE);
    }
}
