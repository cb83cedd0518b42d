//! One request/response multiplexer for a framed stream: numbers requests, matches answers
//! by id, hands every other frame to the caller, and fails what is pending when it ends.
//!
//! It does no I/O of its own choosing and needs no runtime: [`Mux::run`] is a future over
//! futures' `AsyncRead`/`AsyncWrite` halves that the caller spawns; timeouts, heartbeats and
//! opening streams stay with the caller.
//!
//! ```
//! use futures::{StreamExt, channel::{mpsc, oneshot}};
//! use tidings_protocol::mux::{ClientFrames, Mux, MuxError, Outgoing, MAX_IN_FLIGHT};
//!
//! # futures::executor::block_on(async {
//! let (commands, mut queue) = mpsc::channel::<Outgoing<ClientFrames, _>>(8);
//! let (reader, mut writer) = (futures::io::empty(), futures::io::sink());
//! let mut mux = Mux::<ClientFrames, oneshot::Sender<_>>::new(MAX_IN_FLIGHT);
//! drop(commands);
//! let reason = mux.run(reader, &mut writer, &mut queue, |_push| Ok(())).await;
//! assert!(matches!(reason, MuxError::PeerClosed | MuxError::Dropped));
//! # });
//! ```

mod frames;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, marker::PhantomData, pin::pin, sync::Arc};

use futures::{
    AsyncRead, AsyncWrite, AsyncWriteExt, FutureExt, Stream, StreamExt,
    channel::oneshot,
    future::{self, Either},
};
use serde::Serialize;

pub use frames::{ClientFrames, FederationFrames};

use crate::{
    codec::DecodeError,
    errors::ErrorAnswer,
    framing::{self, FrameError},
    limits::MAX_FRAME_BYTES,
};

/// Requests written and not answered yet on one stream, by default; beyond it new requests
/// wait in the caller's (bounded) queue.
pub const MAX_IN_FLIGHT: usize = 256;

/// Most frames taken from the queue and written with one flush.
pub const WRITE_BATCH: usize = 64;

/// Most bytes kept, for a stream whose peer has not said anything yet, to be written again
/// on a new stream; beyond it they are not kept and the stream cannot be replaced.
pub const MAX_UNHEARD_BYTES: usize = 2 * MAX_FRAME_BYTES;

/// The frame types of one request/response protocol.
pub trait Frames {
    /// What a request asks.
    type Request;
    /// What a request is answered with, as the peer sent it.
    type Answer;
    /// A frame this side writes.
    type Outgoing: Serialize;
    /// A frame this side reads.
    type Incoming;

    /// Wraps a request body and its id into a frame.
    fn request(id: u64, body: Self::Request) -> Self::Outgoing;
    /// Decodes one frame the peer sent.
    fn decode(bytes: &[u8]) -> Result<Self::Incoming, DecodeError>;
    /// Tells an answer from any other frame (a push).
    fn route(frame: Self::Incoming) -> Inbound<Self::Answer, Self::Incoming>;
}

/// A frame read from the peer, routed.
#[derive(Debug)]
pub enum Inbound<A, I> {
    /// The answer to the request with this id.
    Answer {
        /// The request's id.
        id: u64,
        /// What the peer answered.
        answer: A,
    },
    /// Anything else: handed to the caller.
    Other(I),
}

/// What the caller queues for the stream.
pub enum Outgoing<F: Frames, R> {
    /// A request, numbered by the multiplexer; its answer goes to `reply`.
    Request {
        /// What is asked.
        body: F::Request,
        /// Where the answer (or the reason there is none) goes.
        reply: R,
    },
    /// A frame that gets no answer (an ack, a heartbeat).
    Frame(F::Outgoing),
}

/// Where the answer of one request goes.
pub trait Reply<A> {
    /// Hands over the answer, or why none will come.
    fn send(self, result: Result<A, MuxError>);
    /// Whether nobody waits for the answer any more (the caller gave up).
    fn is_closed(&self) -> bool;
}

impl<A> Reply<A> for oneshot::Sender<Result<A, MuxError>> {
    fn send(self, result: Result<A, MuxError>) {
        let _ = oneshot::Sender::send(self, result);
    }

    fn is_closed(&self) -> bool {
        self.is_canceled()
    }
}

/// Why a stream ended (and so why its pending requests got no answer).
#[derive(Debug, Clone, thiserror::Error)]
pub enum MuxError {
    /// This side stopped: every queue handle, or the consumer of pushes, is gone.
    #[error("the stream was dropped by this side")]
    Dropped,
    /// The peer ended the stream between frames.
    #[error("the peer closed the stream")]
    PeerClosed,
    /// Reading failed, or the peer broke off in the middle of a frame.
    #[error("reading from the stream failed: {0}")]
    Read(Arc<FrameError>),
    /// Writing failed.
    #[error("writing to the stream failed: {0}")]
    Write(Arc<std::io::Error>),
    /// The peer sent a frame that does not decode.
    #[error("undecodable frame from the peer: {0}")]
    Undecodable(DecodeError),
    /// The peer said it cannot go on, and why.
    #[error("the peer closed the stream: {0}")]
    Fatal(ErrorAnswer),
    /// The peer sent a frame this side never takes on this stream.
    #[error("the peer sent {0} on this stream")]
    UnexpectedFrame(&'static str),
}

/// Frames written before the peer said anything, kept to be written again on a new stream.
enum Unheard {
    /// Not kept (the caller never replaces the stream).
    NotKept,
    /// Kept so far.
    Kept(Vec<u8>),
    /// The peer spoke (or too much was written unheard): nothing to replay.
    Spent,
}

/// The state of one multiplexed conversation: request ids, requests waiting for answers, and
/// what to write again if the stream is replaced before the peer said anything. It outlives
/// a stream: [`Mux::run`] may run again on a new one.
pub struct Mux<F: Frames, R> {
    next_id: u64,
    pending: HashMap<u64, R>,
    max_in_flight: usize,
    unheard: Unheard,
    frames: PhantomData<fn() -> F>,
}

impl<F: Frames, R: Reply<F::Answer>> Mux<F, R> {
    /// A multiplexer with at most `max_in_flight` (at least 1) unanswered requests.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            next_id: 1,
            pending: HashMap::new(),
            max_in_flight: max_in_flight.max(1),
            unheard: Unheard::NotKept,
            frames: PhantomData,
        }
    }

    /// Keeps what is written until the peer first says something, so that a stream the peer
    /// dropped unread can be replaced ([`Mux::replay`]).
    pub fn keeping_unheard(mut self) -> Self {
        self.unheard = Unheard::Kept(Vec::new());
        self
    }

    /// Whether everything written so far is still kept because the peer said nothing yet.
    pub fn can_replay(&self) -> bool {
        matches!(self.unheard, Unheard::Kept(_))
    }

    /// Requests written and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Writes again, on a new stream, everything the peer never heard.
    pub async fn replay<W: AsyncWrite + Unpin>(&self, writer: &mut W) -> Result<(), MuxError> {
        match &self.unheard {
            Unheard::Kept(bytes) if !bytes.is_empty() => framing::write_frames(writer, bytes)
                .await
                .map_err(|error| MuxError::Write(Arc::new(error))),
            _ => Ok(()),
        }
    }

    /// Tells every pending request that no answer will come.
    pub fn fail_all(&mut self, reason: &MuxError) {
        for (_, reply) in self.pending.drain() {
            reply.send(Err(reason.clone()));
        }
    }

    /// Runs `run` on one stream, then fails what is pending and closes the writer: the whole
    /// life of a stream that is never replaced. `commands` is dropped before anyone hears of
    /// the failure, so a caller that retries never queues on this stream again.
    pub async fn drive<Rd, Wr, S, H>(
        mut self,
        reader: Rd,
        mut writer: Wr,
        mut commands: S,
        on_other: H,
    ) -> MuxError
    where
        Rd: AsyncRead + Unpin,
        Wr: AsyncWrite + Unpin,
        S: Stream<Item = Outgoing<F, R>> + Unpin,
        H: FnMut(F::Incoming) -> Result<(), MuxError>,
    {
        let reason = self.run(reader, &mut writer, &mut commands, on_other).await;
        drop(commands);
        self.fail_all(&reason);
        let _ = writer.close().await;
        reason
    }

    /// Serves one stream until it ends, and returns why: writes what `commands` queues (in
    /// batches of up to [`WRITE_BATCH`] frames a flush), hands answers to their requests'
    /// replies and every other frame to `on_other` (whose error ends the stream). Requests
    /// stay pending when it returns: run again on a new stream after [`Mux::replay`], or
    /// [`Mux::fail_all`]. Ends with [`MuxError::Dropped`] once `commands` ends.
    pub async fn run<Rd, Wr, S, H>(
        &mut self,
        reader: Rd,
        writer: &mut Wr,
        commands: &mut S,
        mut on_other: H,
    ) -> MuxError
    where
        Rd: AsyncRead + Unpin,
        Wr: AsyncWrite + Unpin,
        S: Stream<Item = Outgoing<F, R>> + Unpin,
        H: FnMut(F::Incoming) -> Result<(), MuxError>,
    {
        let mut read = pin!(framing::read_frame_owned(reader, Vec::new()));
        let mut out = Vec::new();
        let mut read_first = true;
        loop {
            let next = if self.has_room() {
                Either::Left(commands.next())
            } else {
                Either::Right(future::pending())
            };
            // Whichever is ready first, taking turns when both are, so that neither a peer
            // that keeps sending nor a caller that keeps queueing starves the other side.
            read_first = !read_first;
            let event = if read_first {
                match future::select(read.as_mut(), next).await {
                    Either::Left((read, _)) => Either::Right(read),
                    Either::Right((command, _)) => Either::Left(command),
                }
            } else {
                match future::select(next, read.as_mut()).await {
                    Either::Left((command, _)) => Either::Left(command),
                    Either::Right((read, _)) => Either::Right(read),
                }
            };
            match event {
                Either::Left(None) => return MuxError::Dropped,
                Either::Left(Some(command)) => {
                    out.clear();
                    self.encode(command, &mut out);
                    let mut ended = false;
                    for _ in 1..WRITE_BATCH {
                        if !self.has_room() {
                            break;
                        }
                        match commands.next().now_or_never() {
                            Some(Some(command)) => self.encode(command, &mut out),
                            Some(None) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    if let Err(error) = self.write(writer, &out).await {
                        return error;
                    }
                    if ended {
                        return MuxError::Dropped;
                    }
                }
                Either::Right((reader, buf, result)) => {
                    match result {
                        Ok(true) => {}
                        Ok(false) => return MuxError::PeerClosed,
                        Err(error) => return MuxError::Read(Arc::new(error)),
                    }
                    let frame = match F::decode(&buf) {
                        Ok(frame) => frame,
                        Err(error) => return MuxError::Undecodable(error),
                    };
                    self.unheard = match self.unheard {
                        Unheard::NotKept => Unheard::NotKept,
                        Unheard::Kept(_) | Unheard::Spent => Unheard::Spent,
                    };
                    match F::route(frame) {
                        Inbound::Answer { id, answer } => {
                            if let Some(reply) = self.pending.remove(&id) {
                                reply.send(Ok(answer));
                            }
                        }
                        Inbound::Other(frame) => {
                            if let Err(error) = on_other(frame) {
                                return error;
                            }
                        }
                    }
                    read.set(framing::read_frame_owned(reader, buf));
                }
            }
        }
    }

    /// Whether another request may be written; forgets requests nobody waits for when full.
    fn has_room(&mut self) -> bool {
        if self.pending.len() >= self.max_in_flight {
            self.pending.retain(|_, reply| !reply.is_closed());
        }
        self.pending.len() < self.max_in_flight
    }

    fn encode(&mut self, command: Outgoing<F, R>, out: &mut Vec<u8>) {
        let frame = match command {
            Outgoing::Request { body, reply } => {
                let id = self.next_id;
                self.next_id += 1;
                self.pending.insert(id, reply);
                F::request(id, body)
            }
            Outgoing::Frame(frame) => frame,
        };
        framing::encode_frame(&frame, out);
    }

    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        out: &[u8],
    ) -> Result<(), MuxError> {
        if let Unheard::Kept(kept) = &mut self.unheard {
            if kept.len() + out.len() > MAX_UNHEARD_BYTES {
                self.unheard = Unheard::Spent;
            } else {
                kept.extend_from_slice(out);
            }
        }
        framing::write_frames(writer, out)
            .await
            .map_err(|error| MuxError::Write(Arc::new(error)))
    }
}
