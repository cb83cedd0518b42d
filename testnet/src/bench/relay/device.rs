//! Raw devices: an identity made in memory, registered once by hand-made frames, and a
//! libp2p connection of its own (TCP, Noise, Yamux, one `/tidings/client/2` stream) that
//! the load loops read and write directly, with no client library in between.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{
    AsyncReadExt,
    io::{ReadHalf, WriteHalf},
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
use tidings_keys::Identity;
use tidings_protocol::{
    Address, DeviceEntry, DeviceList, ErrorAnswer,
    client::{CLIENT_PROTOCOL, ClientFrame, Register, RelayFrame, Request, Response},
    framing,
    home::HOME_RECORD_LIFETIME_MS,
    now_ms,
};
use tokio::task::JoinHandle;

/// How long dialling the relay and opening the stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a setup request (register, home record, subscribe) waits for its answer.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Streams opened for one device before giving up, when the relay drops them unread.
const MAX_STREAM_ATTEMPTS: u32 = 8;
/// Frames other than the awaited answer skipped while waiting for it.
const MAX_SKIPPED_FRAMES: usize = 4096;
/// An idle connection stays up this long (the stream keeps it up anyway).
const IDLE_CONNECTION: Duration = Duration::from_secs(3600);
/// Request ids of setup requests; the load loops number theirs from
/// [`super::frames::FIRST_SEND_ID`] on.
const SETUP_ID: u64 = 1;

/// One device of its own account, made in memory (no key file, no store).
pub struct RawDevice {
    /// Its account and device keys and certificate.
    pub identity: Identity,
    /// Its home relay's dial address (with `/p2p/...`).
    pub home: Multiaddr,
}

/// An open client stream with the connection (a swarm task of its own) it runs on.
pub struct Link {
    /// The relay's side of the stream, to read.
    pub reader: ReadHalf<Stream>,
    /// The relay's side of the stream, to write.
    pub writer: WriteHalf<Stream>,
    _swarm: SwarmTask,
}

/// The task driving a device's swarm; dropping it closes the connection.
struct SwarmTask(JoinHandle<()>);

impl Drop for SwarmTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A link and what opening it took.
pub struct Opened {
    /// The stream, answered once.
    pub link: Link,
    /// The answer to the first request.
    pub answer: Response,
    /// Streams the relay closed before answering the first request (dropped unread).
    pub dropped_streams: u32,
}

impl RawDevice {
    /// A fresh account with one device, homed at `home`.
    pub fn new(home: Multiaddr) -> Self {
        Self {
            identity: Identity::generate(),
            home,
        }
    }

    /// The device's address.
    pub fn address(&self) -> Address {
        self.identity.address()
    }

    /// Registers the device (with a device list naming it) and publishes a home record
    /// naming its relay, on one link that is then closed.
    pub async fn register(&self) -> anyhow::Result<()> {
        let user = self.identity.user_id();
        let entry = DeviceEntry {
            device: self.identity.device_id(),
            name: "bench".into(),
            added_at_ms: now_ms(),
        };
        let list = DeviceList::new(user, 1, vec![entry])?;
        let list = self.identity.sign_device_list(list)?;
        let register = Request::Register(Box::new(Register {
            cert: self.identity.cert().clone(),
            invite: None,
            list: Some(Box::new(list)),
        }));
        let mut opened = self.open(register).await?;
        let Response::Registered { relay_addrs, .. } = opened.answer else {
            bail!("registration answered with {:?}", opened.answer);
        };
        let relay = relay_peer(&self.home)?;
        let now = now_ms();
        let record = self.identity.sign_home_record(
            relay.to_string(),
            relay_addrs,
            now,
            now + HOME_RECORD_LIFETIME_MS,
        )?;
        let published = request(&mut opened.link, Request::PublishHome(Box::new(record))).await?;
        match published {
            Ok(Response::HomePublished) => Ok(()),
            other => bail!("home record refused: {other:?}"),
        }
    }

    /// Connects, opens a client stream and sends `first`; a stream the relay closes before
    /// answering is opened again (within [`MAX_STREAM_ATTEMPTS`]) and counted.
    pub async fn open(&self, first: Request) -> anyhow::Result<Opened> {
        let keypair = self.identity.libp2p_keypair()?;
        let relay = relay_peer(&self.home)?;
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(|config| config.with_idle_connection_timeout(IDLE_CONNECTION))
            .build();
        let mut control = swarm.behaviour().new_control();
        swarm.dial(self.home.clone())?;
        let (task, connected) = crate::dialled::run_dialled(swarm);
        let swarm = SwarmTask(task);
        tokio::time::timeout(OPEN_TIMEOUT, crate::dialled::connected(connected))
            .await
            .context("connecting to the relay timed out")??;
        let mut dropped_streams = 0;
        loop {
            let stream = tokio::time::timeout(
                OPEN_TIMEOUT,
                control.open_stream(relay, StreamProtocol::new(CLIENT_PROTOCOL)),
            )
            .await
            .context("opening a client stream timed out")?
            .map_err(|error| anyhow!("opening a client stream: {error}"))?;
            let (mut reader, mut writer) = stream.split();
            match ask(&mut reader, &mut writer, first.clone()).await? {
                Asked::Answer(Ok(answer)) => {
                    let link = Link {
                        reader,
                        writer,
                        _swarm: swarm,
                    };
                    return Ok(Opened {
                        link,
                        answer,
                        dropped_streams,
                    });
                }
                Asked::Answer(Err(refusal)) => bail!("the relay refused: {refusal}"),
                Asked::Unanswered => {
                    dropped_streams += 1;
                    if dropped_streams >= MAX_STREAM_ATTEMPTS {
                        bail!("the relay closed {dropped_streams} new streams unanswered");
                    }
                    // The connection stays: the next stream goes over it.
                }
            }
        }
    }
}

/// The peer id at the end of a relay's dial address.
pub fn relay_peer(address: &Multiaddr) -> anyhow::Result<PeerId> {
    match address.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Ok(peer),
        _ => bail!("relay address {address} has no /p2p/ part"),
    }
}

/// What became of a first request.
enum Asked {
    Answer(Result<Response, ErrorAnswer>),
    /// The stream closed before any answer.
    Unanswered,
}

async fn ask(
    reader: &mut ReadHalf<Stream>,
    writer: &mut WriteHalf<Stream>,
    body: Request,
) -> anyhow::Result<Asked> {
    let frame = ClientFrame::Request { id: SETUP_ID, body };
    if framing::write_frame(writer, &frame).await.is_err() {
        return Ok(Asked::Unanswered);
    }
    match answer(reader).await {
        Ok(Some(answer)) => Ok(Asked::Answer(answer)),
        Ok(None) => Ok(Asked::Unanswered),
        Err(error) => Err(error),
    }
}

/// Sends a setup request on an answered link and waits for its answer.
pub async fn request(
    link: &mut Link,
    body: Request,
) -> anyhow::Result<Result<Response, ErrorAnswer>> {
    let frame = ClientFrame::Request { id: SETUP_ID, body };
    framing::write_frame(&mut link.writer, &frame).await?;
    answer(&mut link.reader)
        .await?
        .context("the relay closed the stream before answering")
}

/// The answer to the setup request; None if the stream ended first (a dropped stream
/// ends without a frame).
async fn answer(
    reader: &mut ReadHalf<Stream>,
) -> anyhow::Result<Option<Result<Response, ErrorAnswer>>> {
    let mut buf = Vec::new();
    tokio::time::timeout(SETUP_TIMEOUT, async {
        for _ in 0..MAX_SKIPPED_FRAMES {
            match framing::read_frame(reader, &mut buf).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return Ok(None),
            }
            match RelayFrame::decode(&buf)? {
                RelayFrame::Response { id, body } if id == SETUP_ID => return Ok(Some(body)),
                RelayFrame::Fatal(answer) => bail!("the relay closed the stream: {answer}"),
                _ => {}
            }
        }
        bail!("no answer among {MAX_SKIPPED_FRAMES} frames")
    })
    .await
    .context("the relay did not answer a setup request in time")?
}

/// The heartbeat a subscription asks for.
pub fn heartbeat(answer: &Response) -> anyhow::Result<Duration> {
    match answer {
        Response::Subscribed { heartbeat_ms, .. } => {
            Ok(Duration::from_millis((*heartbeat_ms).max(100)))
        }
        other => bail!("subscribing answered with {other:?}"),
    }
}
