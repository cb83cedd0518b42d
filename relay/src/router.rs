//! Routing inbound streams by protocol name to their handler: each stream takes a slot
//! within its peer's share and the total, or is closed at once; the rest is the handler's.
//! Streams wait for this in their protocol's accept queue (`network::inbound`), so a burst
//! of new streams is served in turn rather than dropped.

use std::{future::Future, sync::Arc};

use futures::future::BoxFuture;
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    metrics::{Metrics, StreamKind, StreamLimit},
    network::{InboundControl, IncomingStreams, NetworkError},
    streams::{Refusal, StreamSlots},
};

/// Serves the streams of one protocol.
pub(crate) trait ProtocolHandler: Clone + Send + Sync + 'static {
    /// Which streams these are, for `/metrics`.
    const KIND: StreamKind;

    /// Serves one inbound stream from `peer` until it ends or the relay stops.
    fn accept(self, peer: PeerId, stream: Stream) -> impl Future<Output = ()> + Send;
}

/// Takes the streams of each protocol from the stream behaviour and hands them to their
/// handler, one task each on the session tracker.
pub(crate) struct Router {
    control: InboundControl,
    sessions: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    accept_loops: Vec<BoxFuture<'static, ()>>,
}

impl Router {
    /// A router taking streams from `control`, running handlers on `sessions`, until
    /// `shutdown`.
    pub fn builder(
        control: InboundControl,
        sessions: TaskTracker,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            control,
            sessions,
            shutdown,
            metrics,
            accept_loops: Vec::new(),
        }
    }

    /// Routes streams of `protocol` to `handler`, within `slots`.
    pub fn accept<H: ProtocolHandler>(
        mut self,
        protocol: &'static str,
        handler: H,
        slots: Arc<StreamSlots>,
    ) -> Result<Self, NetworkError> {
        let metrics = self.metrics.clone();
        let on_overflow = Arc::new(move |_peer: PeerId| {
            metrics.stream_refused(H::KIND, StreamLimit::Backlog);
        });
        let incoming = self
            .control
            .accept(StreamProtocol::new(protocol), on_overflow)
            .map_err(|error| NetworkError::Transport(error.to_string()))?;
        let accept_loop = accept_loop(
            handler,
            incoming,
            slots,
            self.sessions.clone(),
            self.shutdown.clone(),
            self.metrics.clone(),
        );
        self.accept_loops.push(Box::pin(accept_loop));
        Ok(self)
    }

    /// Starts the accept loops on `tracker`; they end when the relay stops.
    pub fn spawn(self, tracker: &TaskTracker) {
        for accept_loop in self.accept_loops {
            tracker.spawn(accept_loop);
        }
    }
}

/// Takes the streams of one protocol as they come: each gets a slot within its peer's
/// share and the total, or is dropped (closed) at once, so the acceptor never waits.
async fn accept_loop<H: ProtocolHandler>(
    handler: H,
    mut incoming: IncomingStreams,
    slots: Arc<StreamSlots>,
    sessions: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = incoming.next() => next,
        };
        let Some((peer, stream)) = next else {
            break;
        };
        let slot = match slots.try_take(peer) {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::PeerLimit => StreamLimit::PeerLimit,
                    Refusal::Full => StreamLimit::Full,
                };
                metrics.stream_refused(H::KIND, reason);
                tracing::debug!(%peer, service = ?H::KIND, ?reason, "stream refused");
                continue;
            }
        };
        let handler = handler.clone();
        sessions.spawn(async move {
            handler.accept(peer, stream).await;
            drop(slot);
        });
    }
}
