//! A burst of devices opening their first stream at once: every stream is served, none is
//! dropped or refused, and `/metrics` counts no refusal; with a tiny accept queue the streams
//! that do not fit are reset at once (none hangs) and each is counted.

use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt, future::join_all};
use libp2p::{Multiaddr, StreamProtocol, swarm::SwarmEvent};
use tidings_protocol::{
    client::{CLIENT_PROTOCOL, ClientFrame, RelayFrame, Request},
    framing,
};
use tokio::sync::watch;

use crate::common::{metric, start_tweaked, tcp_swarm};

/// Devices in the burst (fewer if the open-files limit does not allow two sockets each).
const DEVICES: usize = 1_000;

/// Devices dialing at a time while the burst is prepared (under the relay's limit on
/// connections in their handshake).
const DIAL_WAVE: usize = 100;

/// How long one device may wait for anything in the test.
const PATIENCE: Duration = Duration::from_secs(60);

/// A device's swarm, connected to the relay, running in the background until dropped.
struct Device {
    control: libp2p_stream::Control,
    relay: libp2p::PeerId,
    swarm: tokio::task::JoinHandle<()>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.swarm.abort();
    }
}

/// Dials the relay at `address` as a new device; returns once the connection is up.
async fn connect(address: &Multiaddr, relay: libp2p::PeerId) -> Device {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let mut swarm = tcp_swarm(keypair, |_| libp2p_stream::Behaviour::new());
    let control = swarm.behaviour().new_control();
    swarm.dial(address.clone()).unwrap();
    let (up, is_up) = tokio::sync::oneshot::channel();
    let swarm = tokio::spawn(async move {
        let mut up = Some(up);
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => {
                    if let Some(up) = up.take() {
                        let _ = up.send(());
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("a device could not connect: {error}")
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(PATIENCE, is_up)
        .await
        .expect("a device did not connect in time")
        .expect("a device's swarm stopped");
    Device {
        control,
        relay,
        swarm,
    }
}

/// What became of a device's first stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The relay answered on it.
    Served,
    /// It ended (reset or closed) without an answer.
    Ended,
    /// Nothing happened within [`PATIENCE`].
    Hung,
}

/// Opens the device's first client stream once `go` fires and sends one request; whether
/// the relay answered on that stream (a dropped or reset stream ends without a frame).
async fn first_stream(mut device: Device, mut go: watch::Receiver<bool>) -> Outcome {
    let _ = go.wait_for(|go| *go).await;
    let served = async {
        let mut stream = device
            .control
            .open_stream(device.relay, StreamProtocol::new(CLIENT_PROTOCOL))
            .await
            .ok()?;
        let request = ClientFrame::Request {
            id: 1,
            body: Request::Subscribe,
        };
        framing::write_frame(&mut stream, &request).await.ok()?;
        stream.flush().await.ok()?;
        let mut buf = Vec::new();
        match framing::read_frame(&mut stream, &mut buf).await {
            Ok(true) => RelayFrame::decode(&buf).ok(),
            _ => None,
        }
    };
    let answer = tokio::time::timeout(PATIENCE, served).await;
    drop(device);
    match answer {
        Ok(Some(RelayFrame::Response { id: 1, .. })) => Outcome::Served,
        Ok(_) => Outcome::Ended,
        Err(_) => Outcome::Hung,
    }
}

/// Raises the soft open-files limit to the hard one; how many devices it allows (two sockets
/// each, the relay's and the device's, both in this process, and some to spare).
fn devices_the_fd_limit_allows() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let spare = 256;
    usize::try_from(limit.saturating_sub(spare) / 2)
        .unwrap_or(usize::MAX)
        .min(DEVICES)
}

/// Starts a relay (its config changed by `tweak`), connects `devices` devices to it, then
/// has all of them open their first stream at once: what became of each, and the relay's
/// `/metrics` text afterwards.
async fn burst(
    devices: usize,
    tweak: impl FnOnce(&mut tidings_relay::RelayConfig),
) -> (Vec<Outcome>, String) {
    let relay = start_tweaked(tweak, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let relay_peer = relay.relay.peer_id();

    // Every device connected first, so the streams come in one burst.
    let mut connected = Vec::with_capacity(devices);
    for wave in 0..devices.div_ceil(DIAL_WAVE) {
        let size = DIAL_WAVE.min(devices - wave * DIAL_WAVE);
        connected.extend(join_all((0..size).map(|_| connect(&address, relay_peer))).await);
    }

    let (go, ready) = watch::channel(false);
    let tasks: Vec<_> = connected
        .into_iter()
        .map(|device| tokio::spawn(first_stream(device, ready.clone())))
        .collect();
    go.send_replace(true);
    let mut outcomes = Vec::with_capacity(devices);
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    (outcomes, relay.relay.metrics().render())
}

fn count(outcomes: &[Outcome], which: Outcome) -> usize {
    outcomes.iter().filter(|outcome| **outcome == which).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_devices_opening_their_first_stream_at_once_are_all_served() {
    let devices = devices_the_fd_limit_allows();
    assert!(
        devices >= 100,
        "the open-files limit allows only {devices} devices"
    );
    let (outcomes, text) = burst(devices, |_| {}).await;
    let dropped = devices - count(&outcomes, Outcome::Served);
    let refused = metric(&text, "tidings_streams_refused_total", &[]).unwrap_or(0.0);
    assert_eq!(
        dropped, 0,
        "{dropped} of {devices} first streams were dropped (refused counted: {refused})"
    );
    assert_eq!(refused, 0.0, "refusals counted:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_a_full_accept_queue_are_reset_at_once_and_counted() {
    let devices = devices_the_fd_limit_allows();
    let (outcomes, text) = burst(devices, |config| config.network.accept_queue = 1).await;
    let (ended, hung) = (
        count(&outcomes, Outcome::Ended),
        count(&outcomes, Outcome::Hung),
    );
    assert_eq!(hung, 0, "{hung} refused streams were left hanging");
    assert!(ended > 0, "a queue of 1 took a burst of {devices} streams");
    let backlog = metric(
        &text,
        "tidings_streams_refused_total",
        &["reason=\"Backlog\""],
    );
    assert_eq!(backlog, Some(ended as f64), "{text}");
}
