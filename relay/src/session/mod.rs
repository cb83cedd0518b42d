//! One device's client-protocol stream: read frames, run handlers, push the mailbox.
//!
//! Requests that only need the store run concurrently (their answers go out in request
//! order); registration and subscription change the session and run inline. The stream is
//! read through one long-lived future, so no partly read frame is ever dropped.

mod context;
mod devices;
mod groups;
mod home;
mod keys;
mod link;
pub(crate) mod live;
mod presence;
mod push;
mod register;
mod requests;
mod send;
mod subscribe;
mod upgrade;

use std::{sync::Arc, time::Duration};

use tokio::{sync::mpsc, time::Instant};

use futures::{
    AsyncReadExt, AsyncWriteExt, FutureExt, StreamExt,
    future::BoxFuture,
    io::{ReadHalf, WriteHalf},
    stream::FuturesOrdered,
};
use libp2p::{PeerId, Stream};
use tidings_protocol::{
    Address, DeviceId, ErrorAnswer, ErrorCode, UserId,
    client::{RelayFrame, Response},
    envelope::SenderKey,
    framing::{self, FrameError},
    limits::MAX_FRAME_BYTES,
    now_ms,
};

use crate::{
    ingest::storage_answer,
    metrics::{DeliveryStage, StreamKind, StreamLimit},
    presence::LiveSender,
    presence::SessionId,
    router::ProtocolHandler,
    store::Store,
    streams::{FrameTimeouts, TimedFrameError, read_frame_timed_owned},
};
pub(crate) use context::{ClientContext, Registration};
use subscribe::Pump;
pub(crate) use upgrade::{UpgradeHandler, V1_STREAMS, V1_STREAMS_PER_PEER};

/// Requests one session may have in flight before the relay stops reading its stream.
const MAX_INFLIGHT: usize = 64;

/// How long a write to a device may take before the session is dropped (a peer that never
/// reads must not pin memory).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for a session's in-flight answers.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type Answer = Result<Response, ErrorAnswer>;

/// The device a peer id names: devices connect with their ed25519 device key.
pub(crate) fn device_of(peer: &PeerId) -> Option<DeviceId> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let key = key.try_into_ed25519().ok()?;
    Some(DeviceId::from_bytes(key.to_bytes()))
}

/// The `/tidings/client/2` handler: one session per device stream.
#[derive(Clone)]
pub(crate) struct ClientHandler(Arc<ClientContext>);

impl ClientHandler {
    pub fn new(context: ClientContext) -> Self {
        Self(Arc::new(context))
    }
}

impl ProtocolHandler for ClientHandler {
    const KIND: StreamKind = StreamKind::Client;

    async fn accept(self, peer: PeerId, stream: Stream) {
        serve(self.0, peer, stream).await;
    }
}

/// Serves one inbound client stream until it closes, fails or the relay shuts down.
async fn serve(cx: Arc<ClientContext>, peer: PeerId, stream: Stream) {
    let _live = cx.metrics.session_opened();
    let (reader, mut writer) = stream.split();
    let Some(device) = device_of(&peer) else {
        let fatal = ErrorAnswer::new(
            ErrorCode::BadCertificate,
            "peer id is not an ed25519 device key",
        );
        let _ = framing::write_frame(&mut writer, &RelayFrame::Fatal(fatal)).await;
        return;
    };
    let id = cx.presence.session_id();
    // Entered before the registration is read, so a revocation committed meanwhile ends it.
    let live_entry = cx.live_devices.enter(device, id);
    let user = match cx.store.device_user(device).await {
        Ok(user) => user,
        Err(error) => {
            let _ =
                framing::write_frame(&mut writer, &RelayFrame::Fatal(storage_answer(error))).await;
            return;
        }
    };
    if let Some(user) = user
        && let Err(fatal) = not_suspended(&cx, user).await
    {
        let _ = framing::write_frame(&mut writer, &RelayFrame::Fatal(fatal)).await;
        return;
    }
    let (live, live_frames) = mpsc::channel(crate::presence::LIVE_QUEUE);
    let session = Session {
        id,
        live_entry,
        cx,
        peer,
        device,
        user,
        pump: None,
        inflight: FuturesOrdered::new(),
        sends: send::PendingSends::default(),
        out: Vec::new(),
        live,
        live_frames,
        last_heard: Instant::now(),
        online: false,
        sender_key: None,
    };
    session.run(reader, writer).await;
}

/// What a device of a suspended account is told.
pub(crate) fn suspended_answer() -> ErrorAnswer {
    ErrorAnswer::new(
        ErrorCode::UserSuspended,
        "this relay's operator suspended the account; ask them to resume it",
    )
}

/// Refuses a suspended user's session.
pub(crate) async fn not_suspended(cx: &ClientContext, user: UserId) -> Result<(), ErrorAnswer> {
    match cx.store.is_suspended(user).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(suspended_answer()),
        Err(error) => Err(storage_answer(error)),
    }
}

struct Session {
    id: SessionId,
    /// Its place among the device's open sessions; cancelled when the device is revoked.
    live_entry: live::LiveEntry,
    cx: Arc<ClientContext>,
    peer: PeerId,
    device: DeviceId,
    user: Option<UserId>,
    pump: Option<Pump>,
    inflight: FuturesOrdered<BoxFuture<'static, Vec<RelayFrame>>>,
    /// `Send` requests read and not handled yet (see [`send::PendingSends`]).
    sends: send::PendingSends,
    /// Encoded frames waiting to be written.
    out: Vec<u8>,
    /// Presence changes and typing notices for this device, and their sender.
    live: LiveSender,
    live_frames: mpsc::Receiver<Box<RelayFrame>>,
    /// When the device last sent a frame (a subscribed device must keep sending).
    last_heard: Instant,
    /// Whether this session counts its user online (it subscribed).
    online: bool,
    /// The device's key for signature checks, made at its first `Send`.
    sender_key: Option<SenderKey>,
}

/// Whether the session goes on after a frame.
enum Flow {
    Continue,
    Close,
}

impl Session {
    async fn run(mut self, reader: ReadHalf<Stream>, mut writer: WriteHalf<Stream>) {
        // The idle deadlines are the session's own (heartbeats, registration); a started
        // frame must finish within the frame timeout.
        let timeouts = FrameTimeouts {
            idle: None,
            frame: self.cx.read_timeouts.frame,
        };
        let mut read = Box::pin(read_frame_timed_owned(reader, Vec::new(), timeouts));
        let timeout = self.cx.presence.timing().heartbeat_timeout;
        // A device that has not registered may not hold its stream by saying nothing.
        let unregistered_idle = self.cx.read_timeouts.idle;
        let revoked = self.live_entry.revoked.clone();
        let suspended = self.live_entry.suspended.clone();
        let removed = self.live_entry.removed.clone();
        loop {
            let can_read = self.inflight.len() + self.sends.len() < MAX_INFLIGHT;
            let flow = tokio::select! {
                biased;
                _ = self.cx.shutdown.cancelled() => Flow::Close,
                _ = revoked.cancelled() => self.fatal(ErrorAnswer::new(
                    ErrorCode::DeviceRevoked,
                    "this device was removed from its account",
                )),
                _ = suspended.cancelled() => self.fatal(suspended_answer()),
                _ = removed.cancelled() => self.fatal(ErrorAnswer::new(
                    ErrorCode::NotRegistered,
                    "this relay's operator removed the account",
                )),
                () = tokio::time::sleep_until(self.last_heard + timeout), if self.online => {
                    tracing::info!(device = %self.device, "device silent for {timeout:?}; taking it as gone");
                    Flow::Close
                }
                () = tokio::time::sleep_until(self.last_heard + unregistered_idle.unwrap_or_default()),
                    if self.user.is_none() && unregistered_idle.is_some() =>
                {
                    tracing::debug!(device = %self.device, "unregistered device silent; closing its stream");
                    let metrics = &self.cx.metrics;
                    metrics.stream_timed_out(StreamKind::Client, StreamLimit::Idle);
                    Flow::Close
                }
                Some(frame) = self.live_frames.recv() => {
                    framing::encode_frame(&frame, &mut self.out);
                    Flow::Continue
                }
                Some(frames) = self.inflight.next(), if !self.inflight.is_empty() => {
                    for frame in frames {
                        framing::encode_frame(&frame, &mut self.out);
                    }
                    Flow::Continue
                }
                frame = next_push(&mut self.pump, &self.cx.store), if self.pump.is_some() => {
                    match frame {
                        Ok(frame) => {
                            if let RelayFrame::Deliver { items } = &frame {
                                let metrics = &self.cx.metrics;
                                metrics.envelopes_delivered(DeliveryStage::Pushed, items.len());
                            }
                            framing::encode_frame(&frame, &mut self.out);
                            Flow::Continue
                        }
                        Err(error) => self.fatal(storage_answer(error)),
                    }
                }
                (reader, buf, result) = &mut read, if can_read => {
                    let mut flow = self.on_read(result, &buf).await;
                    read = Box::pin(read_frame_timed_owned(reader, buf, timeouts));
                    // Frames already here are taken now: a burst of sends is checked and
                    // stored as one batch.
                    while matches!(flow, Flow::Continue)
                        && self.inflight.len() + self.sends.len() < MAX_INFLIGHT
                    {
                        let Some((reader, buf, result)) = (&mut read).now_or_never() else {
                            break;
                        };
                        flow = self.on_read(result, &buf).await;
                        read = Box::pin(read_frame_timed_owned(reader, buf, timeouts));
                    }
                    self.flush_sends();
                    flow
                }
            };
            if !self.flush(&mut writer).await {
                return;
            }
            if let Flow::Close = flow {
                break;
            }
        }
        // Boxed, like each frame's handling: an idle session's task holds only the loop's state.
        Box::pin(self.finish(writer, revoked)).await;
    }

    /// After the stream ends: delivers what is in flight, then tells push and presence.
    async fn finish(
        mut self,
        mut writer: WriteHalf<Stream>,
        revoked: tokio_util::sync::CancellationToken,
    ) {
        if !revoked.is_cancelled() {
            self.drain(&mut writer).await;
        }
        let _ = writer.close().await;
        // The feed is dropped first, so whatever commits from now on goes to the push trigger.
        if self.pump.take().is_some() && !revoked.is_cancelled() && !self.cx.shutdown.is_cancelled()
        {
            push::after_session(&self.cx, self.device).await;
        }
        let online = self.user.filter(|_| self.online);
        self.cx.presence.disconnect(online, self.id).await;
        if online.is_some()
            && !revoked.is_cancelled()
            && let Err(error) = self.cx.store.device_seen(self.device, now_ms()).await
        {
            tracing::debug!(%error, "device last seen not stored");
        }
    }

    /// Writes pending frames; false if the device is gone or too slow.
    async fn flush(&mut self, writer: &mut WriteHalf<Stream>) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let written =
            tokio::time::timeout(WRITE_TIMEOUT, framing::write_frames(writer, &self.out)).await;
        self.out.clear();
        if self.out.capacity() > MAX_FRAME_BYTES {
            self.out = Vec::new();
        }
        match written {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::debug!(%error, "client stream write failed");
                false
            }
            Err(_) => {
                tracing::info!(device = %self.device, "device did not read for {WRITE_TIMEOUT:?}; closing its stream");
                false
            }
        }
    }

    /// Lets requests already taken finish, so every accepted envelope gets its answer.
    async fn drain(&mut self, writer: &mut WriteHalf<Stream>) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while let Ok(Some(frames)) = tokio::time::timeout_at(deadline, self.inflight.next()).await {
            for frame in frames {
                framing::encode_frame(&frame, &mut self.out);
            }
        }
        self.flush(writer).await;
    }

    fn fatal(&mut self, answer: ErrorAnswer) -> Flow {
        tracing::debug!(device = %self.device, %answer, "closing client stream");
        framing::encode_frame(&RelayFrame::Fatal(answer), &mut self.out);
        Flow::Close
    }

    fn respond(&mut self, id: u64, body: Answer) {
        framing::encode_frame(&RelayFrame::Response { id, body }, &mut self.out);
    }

    fn address(&self) -> Option<Address> {
        self.user.map(|user| Address {
            user,
            device: self.device,
        })
    }

    /// What one read of the stream brought: a frame, its end, or an error.
    async fn on_read(&mut self, result: Result<bool, TimedFrameError>, buf: &[u8]) -> Flow {
        self.last_heard = Instant::now();
        match result {
            // Boxed: an idle session's task holds only the loop's state, not a request's.
            Ok(true) => Box::pin(self.on_frame(buf)).await,
            Ok(false) => Flow::Close,
            Err(TimedFrameError::Frame(FrameError::TooLarge { len, max })) => {
                self.fatal(ErrorAnswer::new(
                    ErrorCode::FrameTooLarge,
                    format!("frame of {len} bytes exceeds {max}"),
                ))
            }
            Err(error) => {
                if let Some(reason) = error.deadline() {
                    self.cx.metrics.stream_timed_out(StreamKind::Client, reason);
                }
                tracing::debug!(device = %self.device, %error, "client stream read ended");
                Flow::Close
            }
        }
    }

    /// Hands the `Send` requests read so far to one task (answered in order with the rest).
    fn flush_sends(&mut self) {
        let (Some(requests), Some(me)) = (self.sends.take(), self.address()) else {
            return;
        };
        let key = self.sender_key();
        let work = send::handle(self.cx.clone(), me, key, requests);
        self.inflight.push_back(Box::pin(work));
    }
}

async fn next_push(
    pump: &mut Option<Pump>,
    store: &Store,
) -> Result<RelayFrame, crate::store::StoreError> {
    match pump {
        Some(pump) => pump.next_frame(store).await,
        None => std::future::pending().await,
    }
}
