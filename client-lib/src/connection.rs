//! The device's one client-protocol stream to its home relay, on the shared multiplexer
//! (`tidings_protocol::mux`): requests matched to answers, acks and heartbeats, and mailbox
//! pushes handed to whoever consumes [`Connection::next_push`].
//!
//! The stream task spawned by [`Connection::open`] owns the stream: nothing else writes to
//! the relay or reads from it.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{
    AsyncReadExt, AsyncWriteExt, Stream,
    channel::oneshot,
    io::{ReadHalf, WriteHalf},
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use libp2p_stream::OpenStreamError;
use tidings_protocol::{
    ErrorAnswer, RawEnvelope,
    client::{CLIENT_PROTOCOL, ClientFrame, Delivery, RelayFrame, Request, Response},
    mux::{ClientFrames, MAX_IN_FLIGHT, Mux, MuxError, Outgoing},
    presence::PresenceReport,
};
use tokio::sync::mpsc;

use crate::{
    calls::ClientCall,
    net::{NetError, Network},
};

/// How long a request waits for its answer before the connection is considered dead.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests, acks and heartbeat changes queued for the stream task before callers wait.
const OUTGOING_QUEUE: usize = 64;

/// Presence changes and typing notices kept for a consumer that is not reading; beyond it
/// they are dropped (they are ephemeral; a later change supersedes them).
const LIVE_QUEUE: usize = 256;

/// How often a stream the relay closed before saying anything is opened again.
const REOPEN_ATTEMPTS: u32 = 3;

/// Heartbeats are never sent more often than this, whatever the relay asks.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// Why a request got no answer from the relay.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectionError {
    /// The relay refused it, with a typed reason.
    #[error("relay refused: {0}")]
    Refused(ErrorAnswer),
    /// The stream closed or failed before the answer came.
    #[error("connection to the relay lost: {0}")]
    Lost(MuxError),
    /// The connection was closed already (its stream task has ended).
    #[error("connection to the relay lost: the connection is closed")]
    Closed,
    /// The relay could not be dialled again.
    #[error("connection to the relay lost: {0}")]
    Dial(NetError),
    /// No stream could be opened to the relay.
    #[error("connection to the relay lost: {0}")]
    Open(Arc<OpenStreamError>),
    /// The relay did not answer in time.
    #[error("the relay did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
    /// The relay answered with something that does not fit the request.
    #[error("unexpected answer from the relay to {asked}: {got:?}")]
    Unexpected {
        /// The request kind.
        asked: &'static str,
        /// What came back.
        got: Box<Response>,
    },
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

/// Where the answer of one request goes.
type Reply = oneshot::Sender<Result<Result<Response, ErrorAnswer>, MuxError>>;

/// What callers queue for the stream task.
enum Command {
    /// A request or a frame for the multiplexer.
    Mux(Outgoing<ClientFrames, Reply>),
    /// Send a heartbeat this often from now on.
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
    outgoing: mpsc::Sender<Command>,
}

impl Requester {
    /// Sends a typed request and waits for its typed answer.
    pub async fn call<C: ClientCall>(&self, call: C) -> Result<C::Answer, ConnectionError> {
        let response = self.request(call.into_request()).await?;
        C::answer(response).map_err(|got| ConnectionError::Unexpected {
            asked: C::NAME,
            got: Box::new(got),
        })
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, body: Request) -> Result<Response, ConnectionError> {
        let (reply, answer) = oneshot::channel();
        self.queue(Command::Mux(Outgoing::Request { body, reply }))
            .await?;
        match crate::runtime::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(Ok(Ok(response)))) => Ok(response),
            Ok(Ok(Ok(Err(refusal)))) => Err(ConnectionError::Refused(refusal)),
            Ok(Ok(Err(lost))) => Err(ConnectionError::Lost(lost)),
            Ok(Err(oneshot::Canceled)) => Err(ConnectionError::Closed),
            Err(_) => Err(ConnectionError::Timeout),
        }
    }

    /// Sends a heartbeat every `every` from now on (the relay's `heartbeat_ms`), so the
    /// relay keeps this device online while the process lives.
    pub async fn heartbeat(&self, every: Duration) -> Result<(), ConnectionError> {
        self.queue(Command::Heartbeat(every)).await
    }

    /// Tells the relay everything up to `seq` is stored on this device.
    pub async fn ack(&self, seq: u64) -> Result<(), ConnectionError> {
        self.queue(Command::Mux(Outgoing::Frame(ClientFrame::Ack {
            up_to: seq,
        })))
        .await
    }

    async fn queue(&self, command: Command) -> Result<(), ConnectionError> {
        self.outgoing
            .send(command)
            .await
            .map_err(|_| ConnectionError::Closed)
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
        let route = Route {
            network: network.clone(),
            address,
            relay,
            reopened: 0,
        };
        let (reader, writer) = route.open().await?;
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        // Unbounded on purpose: the relay never has more than its window (1024 envelopes) unacked
        // in flight, so this cannot grow past that, and a consumer that awaits a request while
        // pushes arrive can never deadlock the stream task.
        let (pushes_tx, pushes) = mpsc::unbounded_channel();
        let (live_tx, live) = mpsc::channel(LIVE_QUEUE);
        let pushes_to = Pushes {
            mailbox: pushes_tx,
            live: live_tx,
        };
        crate::runtime::spawn(run(
            reader,
            writer,
            route,
            Queue::new(outgoing_rx),
            pushes_to,
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

    /// Sends a typed request and waits for its typed answer.
    pub async fn call<C: ClientCall>(&self, call: C) -> Result<C::Answer, ConnectionError> {
        self.requester.call(call).await
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

/// The relay's stream halves.
type Halves = (ReadHalf<libp2p::Stream>, WriteHalf<libp2p::Stream>);

/// How to reach the relay again while replacing the stream is still safe.
struct Route {
    network: Network,
    /// Where to dial the relay again if the connection itself is gone.
    address: Option<Multiaddr>,
    relay: PeerId,
    reopened: u32,
}

impl Route {
    async fn open(&self) -> Result<Halves, ConnectionError> {
        let stream = self
            .network
            .control()
            .open_stream(self.relay, StreamProtocol::new(CLIENT_PROTOCOL))
            .await
            .map_err(|error| ConnectionError::Open(Arc::new(error)))?;
        Ok(stream.split())
    }

    /// Opens a new stream (redialling if needed) and writes again what the relay never
    /// heard (a relay resets new streams its accept queue has no room for); tries again
    /// while attempts are left.
    async fn reopen(&mut self, mux: &Mux<ClientFrames, Reply>) -> Result<Halves, ConnectionError> {
        loop {
            crate::runtime::sleep(Duration::from_millis(50 << self.reopened)).await;
            self.reopened += 1;
            tracing::debug!(
                attempt = self.reopened,
                "the relay closed a new stream unread; reopening"
            );
            match self.try_reopen(mux).await {
                Ok(halves) => return Ok(halves),
                Err(error) if self.reopened >= REOPEN_ATTEMPTS => return Err(error),
                Err(error) => tracing::debug!(%error, "reopening failed"),
            }
        }
    }

    async fn try_reopen(&self, mux: &Mux<ClientFrames, Reply>) -> Result<Halves, ConnectionError> {
        if let Some(address) = &self.address {
            self.network
                .dial(address.clone())
                .await
                .map_err(ConnectionError::Dial)?;
        }
        let (reader, mut writer) = self.open().await?;
        mux.replay(&mut writer)
            .await
            .map_err(ConnectionError::Lost)?;
        Ok((reader, writer))
    }
}

/// The callers' queue as the multiplexer reads it, with heartbeats mixed in: a `Ping` frame
/// each time the heartbeat interval (if any) ticks.
struct Queue {
    commands: mpsc::Receiver<Command>,
    heartbeat: Option<crate::runtime::Interval>,
}

impl Queue {
    fn new(commands: mpsc::Receiver<Command>) -> Self {
        Self {
            commands,
            heartbeat: None,
        }
    }
}

impl Stream for Queue {
    type Item = Outgoing<ClientFrames, Reply>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.commands.poll_recv(cx) {
                Poll::Ready(Some(Command::Mux(outgoing))) => return Poll::Ready(Some(outgoing)),
                Poll::Ready(Some(Command::Heartbeat(every))) => {
                    self.heartbeat = Some(crate::runtime::interval(every.max(MIN_HEARTBEAT)));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => break,
            }
        }
        match &mut self.heartbeat {
            Some(interval) => interval
                .poll_tick(cx)
                .map(|_| Some(Outgoing::Frame(ClientFrame::Ping))),
            None => Poll::Pending,
        }
    }
}

/// Where the stream task hands pushes: mailbox pushes are never dropped; live ones may be.
struct Pushes {
    mailbox: mpsc::UnboundedSender<Push>,
    live: mpsc::Sender<Push>,
}

impl Pushes {
    /// Hands on one frame that is not an answer; an error ends the stream.
    fn take(&self, frame: RelayFrame) -> Result<(), MuxError> {
        match frame {
            // Answers never get here: the multiplexer routes them to their requests.
            RelayFrame::Response { .. } => Ok(()),
            RelayFrame::Deliver { items } => self
                .mailbox
                .send(Push::Deliver(items.into_vec()))
                .map_err(|_| MuxError::Dropped),
            RelayFrame::CaughtUp { head } => {
                let _ = self.mailbox.send(Push::CaughtUp { head });
                Ok(())
            }
            RelayFrame::Fatal(answer) => {
                let _ = self.mailbox.send(Push::Closed(Some(answer.clone())));
                Err(MuxError::Fatal(answer))
            }
            RelayFrame::Presence(report) => {
                let _ = self.live.try_send(Push::Presence(report));
                Ok(())
            }
            RelayFrame::Ephemeral(envelope) => {
                let _ = self.live.try_send(Push::Ephemeral(envelope));
                Ok(())
            }
        }
    }
}

/// Owns the stream: runs the multiplexer on it, and on a new one while the relay has said
/// nothing yet; then fails what is pending and tells the push consumer.
async fn run(
    mut reader: ReadHalf<libp2p::Stream>,
    mut writer: WriteHalf<libp2p::Stream>,
    mut route: Route,
    mut queue: Queue,
    pushes: Pushes,
) {
    let mut mux = Mux::<ClientFrames, Reply>::new(MAX_IN_FLIGHT).keeping_unheard();
    let reason = loop {
        let reason = mux
            .run(reader, &mut writer, &mut queue, |frame| pushes.take(frame))
            .await;
        let replaceable = mux.can_replay() && route.reopened < REOPEN_ATTEMPTS;
        if matches!(reason, MuxError::Dropped) || !replaceable {
            break reason;
        }
        match route.reopen(&mux).await {
            Ok((new_reader, new_writer)) => (reader, writer) = (new_reader, new_writer),
            Err(error) => {
                tracing::debug!(%error, "the relay's stream could not be replaced");
                break reason;
            }
        }
    };
    drop(queue);
    mux.fail_all(&reason);
    let _ = pushes.mailbox.send(Push::Closed(None));
    let _ = writer.close().await;
}
