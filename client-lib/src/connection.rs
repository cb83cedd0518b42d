//! One client-protocol stream to the home relay: requests matched to responses by id, and
//! mailbox pushes handed to whoever consumes [`Connection::next_push`].

use std::{collections::HashMap, time::Duration};

use futures::{
    AsyncReadExt,
    io::{ReadHalf, WriteHalf},
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tidings_protocol::{
    ErrorAnswer, RawEnvelope,
    client::{CLIENT_PROTOCOL, ClientFrame, Delivery, RelayFrame, Request, Response},
    framing,
    presence::PresenceReport,
};
use tokio::sync::{mpsc, oneshot};

use crate::net::Network;

/// How long a request waits for its answer before the connection is considered dead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no answer from the relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The relay refused it, with a typed reason.
    #[error("relay refused: {0}")]
    Refused(ErrorAnswer),
    /// The stream closed or failed before the answer came.
    #[error("connection to the relay lost: {0}")]
    Lost(String),
    /// The relay did not answer in time.
    #[error("the relay did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
    /// The relay answered with something that does not fit the request.
    #[error("unexpected answer from the relay: {0}")]
    Unexpected(String),
}

/// Something the relay pushed.
#[derive(Debug)]
pub enum Push {
    /// Mailbox envelopes, in order.
    Deliver(Vec<Delivery>),
    /// Everything stored at subscription time was pushed.
    CaughtUp {
        /// Last sequence number pushed.
        head: u64,
    },
    /// The stream ended (with the relay's reason if it gave one).
    Closed(Option<ErrorAnswer>),
    /// A watched user's presence changed.
    Presence(PresenceReport),
    /// A typing notice (verify it before use).
    Ephemeral(RawEnvelope),
}

/// Presence changes and typing notices kept for a consumer that is not reading; beyond it
/// they are dropped (they are ephemeral; a later change supersedes them).
const LIVE_QUEUE: usize = 256;

enum Outgoing {
    Request {
        body: Request,
        reply: oneshot::Sender<Result<Response, ConnectionError>>,
    },
    Ack(u64),
    Heartbeat(Duration),
}

/// An open session with the home relay. Cheap to use from one task; cloneable requester via
/// [`Connection::requester`].
pub struct Connection {
    requester: Requester,
    pushes: mpsc::UnboundedReceiver<Push>,
    live: mpsc::Receiver<Push>,
    relay: PeerId,
}

/// Sends requests and acks on a connection; cloneable.
#[derive(Clone)]
pub struct Requester {
    outgoing: mpsc::Sender<Outgoing>,
}

impl Requester {
    /// Sends a request and waits for its answer.
    pub async fn request(&self, body: Request) -> Result<Response, ConnectionError> {
        let (reply, answer) = oneshot::channel();
        self.outgoing
            .send(Outgoing::Request { body, reply })
            .await
            .map_err(|_| ConnectionError::Lost("connection closed".into()))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ConnectionError::Lost("connection closed".into())),
            Err(_) => Err(ConnectionError::Timeout),
        }
    }

    /// Sends a heartbeat every `every` from now on (the relay's `heartbeat_ms`), so the
    /// relay keeps this device online while the process lives.
    pub async fn heartbeat(&self, every: Duration) -> Result<(), ConnectionError> {
        self.outgoing
            .send(Outgoing::Heartbeat(every))
            .await
            .map_err(|_| ConnectionError::Lost("connection closed".into()))
    }

    /// Tells the relay everything up to `seq` is stored on this device.
    pub async fn ack(&self, seq: u64) -> Result<(), ConnectionError> {
        self.outgoing
            .send(Outgoing::Ack(seq))
            .await
            .map_err(|_| ConnectionError::Lost("connection closed".into()))
    }
}

impl Connection {
    /// Opens the client stream on an established connection to `relay`, dialled at
    /// `address`: a stream the relay closes before saying anything is opened again,
    /// redialling `address` if the connection itself went away.
    pub async fn open_redialling(
        network: &Network,
        relay: PeerId,
        address: Multiaddr,
    ) -> Result<Connection, ConnectionError> {
        Self::start(network, relay, Some(address)).await
    }

    /// Opens the client stream on an established connection to `relay`.
    pub async fn open(network: &Network, relay: PeerId) -> Result<Connection, ConnectionError> {
        Self::start(network, relay, None).await
    }

    async fn start(
        network: &Network,
        relay: PeerId,
        address: Option<Multiaddr>,
    ) -> Result<Connection, ConnectionError> {
        let stream = network
            .control()
            .open_stream(relay, StreamProtocol::new(CLIENT_PROTOCOL))
            .await
            .map_err(|error| ConnectionError::Lost(error.to_string()))?;
        let (outgoing, outgoing_rx) = mpsc::channel(64);
        // Unbounded on purpose: the relay never has more than its window (1024 envelopes) unacked
        // in flight, so this cannot grow past that, and a consumer that awaits a request while
        // pushes arrive can never deadlock the stream task.
        let (pushes_tx, pushes) = mpsc::unbounded_channel();
        let (live_tx, live) = mpsc::channel(LIVE_QUEUE);
        let link = Link {
            network: network.clone(),
            address,
            relay,
            unheard: Vec::new(),
            heard: false,
            reopened: 0,
        };
        tokio::spawn(run(
            stream,
            link,
            outgoing_rx,
            Pushes {
                mailbox: pushes_tx,
                live: live_tx,
            },
        ));
        Ok(Connection {
            requester: Requester { outgoing },
            pushes,
            live,
            relay,
        })
    }

    /// The relay's peer id.
    pub fn relay(&self) -> PeerId {
        self.relay
    }

    /// A cloneable handle for requests and acks.
    pub fn requester(&self) -> Requester {
        self.requester.clone()
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, body: Request) -> Result<Response, ConnectionError> {
        self.requester.request(body).await
    }

    /// The next push from the relay; `Push::Closed` once the stream is gone. Cancel-safe.
    pub async fn next_push(&mut self) -> Push {
        tokio::select! {
            push = self.pushes.recv() => push.unwrap_or(Push::Closed(None)),
            Some(push) = self.live.recv() => push,
        }
    }
}

/// Where the stream task hands pushes: mailbox pushes are never dropped; live ones may be.
struct Pushes {
    mailbox: mpsc::UnboundedSender<Push>,
    live: mpsc::Sender<Push>,
}

/// The stream to the relay, and how to open it again while that is still safe.
struct Link {
    network: Network,
    /// Where to dial the relay again if the connection itself is gone.
    address: Option<Multiaddr>,
    relay: PeerId,
    /// Frames written before the relay said anything: the relay may have dropped the stream
    /// unread (libp2p-stream drops new streams when many arrive at once), so they are
    /// written again on a new stream. Cleared by the relay's first frame.
    unheard: Vec<ClientFrame>,
    heard: bool,
    reopened: u32,
}

/// How often a stream the relay closed before saying anything is opened again.
const REOPEN_ATTEMPTS: u32 = 3;

impl Link {
    /// Whether the stream ended before the relay said anything, and may be opened again.
    fn may_reopen(&self) -> bool {
        !self.heard && self.reopened < REOPEN_ATTEMPTS
    }

    /// Opens a new stream (redialling if needed) and writes again what the relay never
    /// answered; tries again while attempts are left.
    async fn reopen(&mut self) -> Result<(ReadHalf<Stream>, WriteHalf<Stream>), String> {
        loop {
            tokio::time::sleep(Duration::from_millis(50 << self.reopened)).await;
            self.reopened += 1;
            tracing::debug!(
                attempt = self.reopened,
                "the relay closed a new stream unread; reopening"
            );
            match self.try_reopen().await {
                Ok(halves) => return Ok(halves),
                Err(error) if self.reopened >= REOPEN_ATTEMPTS => return Err(error),
                Err(error) => tracing::debug!(%error, "reopening failed"),
            }
        }
    }

    async fn try_reopen(&mut self) -> Result<(ReadHalf<Stream>, WriteHalf<Stream>), String> {
        if let Some(address) = &self.address {
            self.network
                .dial(address.clone())
                .await
                .map_err(|error| error.to_string())?;
        }
        let stream = self
            .network
            .control()
            .open_stream(self.relay, StreamProtocol::new(CLIENT_PROTOCOL))
            .await
            .map_err(|error| error.to_string())?;
        let (reader, mut writer) = stream.split();
        for frame in &self.unheard {
            write(&mut writer, frame).await?;
        }
        Ok((reader, writer))
    }
}

/// Owns the stream: writes requests, acks and heartbeats, reads answers and pushes.
async fn run(
    stream: Stream,
    mut link: Link,
    mut outgoing: mpsc::Receiver<Outgoing>,
    pushes: Pushes,
) {
    let mut heartbeat: Option<tokio::time::Interval> = None;
    let (reader, mut writer) = stream.split();
    let mut pending: HashMap<u64, oneshot::Sender<Result<Response, ConnectionError>>> =
        HashMap::new();
    let mut next_id = 1u64;
    let mut read = Box::pin(framing::read_frame_owned(reader, Vec::new()));
    let reason = loop {
        tokio::select! {
            _ = tick(&mut heartbeat) => {
                if let Err(error) = write(&mut writer, &ClientFrame::Ping).await {
                    break Some(error);
                }
            }
            command = outgoing.recv() => {
                let Some(command) = command else { break None };
                let frame = match command {
                    Outgoing::Request { body, reply } => {
                        let id = next_id;
                        next_id += 1;
                        pending.insert(id, reply);
                        ClientFrame::Request { id, body }
                    }
                    Outgoing::Ack(up_to) => ClientFrame::Ack { up_to },
                    Outgoing::Heartbeat(every) => {
                        let mut interval = tokio::time::interval(every.max(Duration::from_millis(100)));
                        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        heartbeat = Some(interval);
                        continue;
                    }
                };
                if !link.heard {
                    link.unheard.push(frame.clone());
                }
                if let Err(error) = write(&mut writer, &frame).await {
                    if !link.may_reopen() {
                        break Some(error);
                    }
                    match link.reopen().await {
                        Ok((reader, new_writer)) => {
                            writer = new_writer;
                            read = Box::pin(framing::read_frame_owned(reader, Vec::new()));
                        }
                        Err(error) => break Some(error),
                    }
                }
            }
            (reader, buf, result) = &mut read => {
                let ended = match result {
                    Ok(true) => match RelayFrame::decode(&buf) {
                        Ok(frame) => {
                            link.heard = true;
                            link.unheard.clear();
                            on_frame(frame, &mut pending, &pushes)
                        }
                        Err(error) => Some(format!("undecodable frame from relay: {error}")),
                    },
                    Ok(false) => Some("relay closed the stream".into()),
                    Err(error) => Some(error.to_string()),
                };
                match ended {
                    None => read = Box::pin(framing::read_frame_owned(reader, buf)),
                    Some(_) if link.may_reopen() => match link.reopen().await {
                        Ok((reader, new_writer)) => {
                            writer = new_writer;
                            read = Box::pin(framing::read_frame_owned(reader, Vec::new()));
                        }
                        Err(error) => break Some(error),
                    },
                    Some(reason) => break Some(reason),
                }
            }
        }
    };
    let reason = reason.unwrap_or_else(|| "connection dropped by the client".into());
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(ConnectionError::Lost(reason.clone())));
    }
    let _ = pushes.mailbox.send(Push::Closed(None));
    let _ = futures::AsyncWriteExt::close(&mut writer).await;
}

async fn tick(heartbeat: &mut Option<tokio::time::Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn write(writer: &mut WriteHalf<Stream>, frame: &ClientFrame) -> Result<(), String> {
    framing::write_frame(writer, frame)
        .await
        .map_err(|error| error.to_string())
}

/// Routes one frame; returns a reason when the stream must end.
fn on_frame(
    frame: RelayFrame,
    pending: &mut HashMap<u64, oneshot::Sender<Result<Response, ConnectionError>>>,
    pushes: &Pushes,
) -> Option<String> {
    match frame {
        RelayFrame::Response { id, body } => {
            if let Some(reply) = pending.remove(&id) {
                let _ = reply.send(body.map_err(ConnectionError::Refused));
            }
            None
        }
        RelayFrame::Deliver { items } => {
            if pushes
                .mailbox
                .send(Push::Deliver(items.into_vec()))
                .is_err()
            {
                return Some("push consumer gone".into());
            }
            None
        }
        RelayFrame::CaughtUp { head } => {
            let _ = pushes.mailbox.send(Push::CaughtUp { head });
            None
        }
        RelayFrame::Fatal(answer) => {
            let reason = answer.to_string();
            let _ = pushes.mailbox.send(Push::Closed(Some(answer)));
            Some(reason)
        }
        RelayFrame::Presence(report) => {
            let _ = pushes.live.try_send(Push::Presence(report));
            None
        }
        RelayFrame::Ephemeral(envelope) => {
            let _ = pushes.live.try_send(Push::Ephemeral(envelope));
            None
        }
    }
}
