//! Connections from peers of the attackers' own (any identity, no behaviour but streams):
//! one stream at a time for raw devices, or a flood of stalled federation streams.

use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{
    Multiaddr, PeerId, Stream, StreamProtocol, SwarmBuilder, identity::Keypair, noise, tcp, yamux,
};
use tidings_protocol::federation::FEDERATION_PROTOCOL;
use tokio::task::JoinHandle;

use super::rogue::split_peer;

/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to a relay from a swarm of its own (any identity), on which streams are
/// opened one by one; the swarm runs until the dialer is dropped.
pub struct Dialer {
    control: libp2p_stream::Control,
    /// The relay dialed.
    pub peer: PeerId,
    task: Option<JoinHandle<()>>,
    /// Whether the dial came through; awaited by the first [`Dialer::open`].
    connected: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>,
}

impl Drop for Dialer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Dialer {
    /// Dials `address` (ending in `/p2p/<peer id>`) as `keypair`.
    pub fn dial(keypair: Keypair, address: &Multiaddr) -> anyhow::Result<Dialer> {
        let (peer, _) = split_peer(address)?;
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(3600))
            })
            .build();
        let control = swarm.behaviour().new_control();
        swarm.dial(address.clone())?;
        let (task, connected) = crate::dialled::run_dialled(swarm);
        Ok(Dialer {
            control,
            peer,
            task: Some(task),
            connected: Some(connected),
        })
    }

    /// Opens a stream of `protocol` on the connection.
    pub async fn open(&mut self, protocol: &'static str) -> anyhow::Result<Stream> {
        if let Some(connected) = self.connected.take() {
            tokio::time::timeout(OPEN_TIMEOUT, crate::dialled::connected(connected))
                .await
                .context("connecting timed out")??;
        }
        tokio::time::timeout(
            OPEN_TIMEOUT,
            self.control
                .open_stream(self.peer, StreamProtocol::new(protocol)),
        )
        .await
        .with_context(|| format!("opening a {protocol} stream timed out"))?
        .map_err(|error| anyhow!("opening a {protocol} stream: {error}"))
    }

    /// The swarm's task, for a caller that keeps one stream and drops the dialer.
    pub fn into_task(mut self) -> JoinHandle<()> {
        match self.task.take() {
            Some(task) => task,
            None => tokio::spawn(async {}),
        }
    }
}

/// Federation streams held open at a relay by one stranger identity over several
/// connections, each stalled one byte into its first frame, until dropped.
pub struct Flood {
    dialers: Vec<Dialer>,
    streams: Vec<Stream>,
    /// Streams the relay kept open.
    pub held: usize,
    /// Streams the relay closed or refused as they were opened.
    pub dropped: usize,
}

/// How long a flood keeps opening streams.
const FLOOD_TIME: Duration = Duration::from_secs(12);

/// How long a freshly opened flood stream is watched for the relay closing it.
const FLOOD_CHECK: Duration = Duration::from_millis(50);

impl Flood {
    /// Opens `connections` connections to `relay` and tries to hold `per_connection` stalled
    /// federation streams on each (a stream the relay drops is tried again, within bounds).
    pub async fn start(
        relay: &Multiaddr,
        connections: usize,
        per_connection: usize,
    ) -> anyhow::Result<Flood> {
        let keypair = Keypair::generate_ed25519();
        let deadline = tokio::time::Instant::now() + FLOOD_TIME;
        let held = futures::future::join_all((0..connections).map(|_| {
            let keypair = keypair.clone();
            async move {
                let mut dialer = Dialer::dial(keypair, relay)?;
                let mut streams = Vec::with_capacity(per_connection);
                let mut dropped = 0;
                while streams.len() < per_connection
                    && dropped < per_connection
                    && tokio::time::Instant::now() < deadline
                {
                    let open = tokio::time::timeout_at(deadline, dialer.open(FEDERATION_PROTOCOL));
                    let Ok(open) = open.await else { break };
                    match open {
                        Ok(stream) => match stall(stream).await {
                            Some(stream) => streams.push(stream),
                            None => dropped += 1,
                        },
                        Err(error) => {
                            tracing::debug!(%error, "a flood stream did not open");
                            dropped += 1;
                        }
                    }
                }
                anyhow::Ok((dialer, streams, dropped))
            }
        }))
        .await;
        let mut dialers = Vec::new();
        let mut streams = Vec::new();
        let mut dropped = 0;
        for connection in held {
            let (dialer, opened, refused) = connection?;
            dialers.push(dialer);
            streams.extend(opened);
            dropped += refused;
        }
        Ok(Flood {
            held: streams.len(),
            dropped,
            dialers,
            streams,
        })
    }
}

impl Flood {
    /// Opens more stalled streams until the relay drops one (at most `most`): takes the
    /// slots freed since the flood started. How many it took.
    pub async fn top_up(&mut self, most: usize) -> usize {
        let mut taken = 0;
        for attempt in 0..most {
            let index = attempt % self.dialers.len().max(1);
            let Some(dialer) = self.dialers.get_mut(index) else {
                break;
            };
            let opened = dialer.open(FEDERATION_PROTOCOL).await;
            match opened {
                Ok(stream) => match stall(stream).await {
                    Some(stream) => {
                        self.streams.push(stream);
                        taken += 1;
                    }
                    None => break,
                },
                Err(_) => break,
            }
        }
        self.held += taken;
        taken
    }
}

/// Sends the first byte of a frame's length and nothing more, so the relay serves the stream
/// and waits for the rest; the stream if the relay kept it open.
async fn stall(mut stream: Stream) -> Option<Stream> {
    stream.write_all(&[0]).await.ok()?;
    stream.flush().await.ok()?;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(FLOOD_CHECK, stream.read(&mut byte)).await {
        Err(_) => Some(stream),
        Ok(_) => None,
    }
}
