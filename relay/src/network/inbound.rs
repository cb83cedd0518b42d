//! Inbound streams of the relay's protocols: each negotiated stream goes into its protocol's
//! bounded accept queue at once; one that finds the queue full is reset (the peer sees the
//! stream end at once) and reported, never dropped unseen.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::{Ready, ready},
    sync::{Arc, RwLock},
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId, Stream, StreamProtocol,
    core::{Endpoint, InboundUpgrade, UpgradeInfo, transport::PortUse, upgrade::DeniedUpgrade},
    swarm::{
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
        handler::{ConnectionEvent, FullyNegotiatedInbound},
    },
};
use tokio::sync::mpsc;

/// Called with the peer whose stream found its protocol's queue full (and was reset).
pub(crate) type OnOverflow = Arc<dyn Fn(PeerId) + Send + Sync>;

/// Where the streams of one protocol go.
struct Route {
    queue: mpsc::Sender<(PeerId, Stream)>,
    on_overflow: OnOverflow,
}

/// The protocols accepted, shared by the behaviour, its handlers and the control.
#[derive(Clone, Default)]
struct Routes(Arc<RwLock<HashMap<StreamProtocol, Route>>>);

impl Routes {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<StreamProtocol, Route>> {
        self.0.read().unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<StreamProtocol, Route>> {
        self.0.write().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Protocols with a live accept queue.
    fn protocols(&self) -> Vec<StreamProtocol> {
        self.read()
            .iter()
            .filter(|(_, route)| !route.queue.is_closed())
            .map(|(protocol, _)| protocol.clone())
            .collect()
    }

    /// Queues a negotiated stream; a stream that cannot be queued is dropped here, which
    /// resets it, so the peer learns at once.
    fn deliver(&self, peer: PeerId, protocol: &StreamProtocol, stream: Stream) {
        let routes = self.read();
        let Some(route) = routes.get(protocol) else {
            tracing::debug!(%peer, %protocol, "stream of a protocol no longer accepted; reset");
            return;
        };
        match route.queue.try_send((peer, stream)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                (route.on_overflow)(peer);
                tracing::debug!(%peer, %protocol, "accept queue full: stream reset (counted)");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(%peer, %protocol, "accept loop gone: stream reset");
            }
        }
    }
}

/// The protocol was accepted already.
#[derive(Debug, thiserror::Error)]
#[error("streams of {0} are accepted already")]
pub struct AlreadyAccepted(pub StreamProtocol);

/// Registers protocols to accept. Cheap to clone.
#[derive(Clone)]
pub struct InboundControl {
    routes: Routes,
    /// Streams of one protocol waiting for its accept loop (`network.accept_queue`). The
    /// accept loop takes each in microseconds, so a full queue means the relay is far behind
    /// and refusing (visibly) is the right answer.
    capacity: usize,
}

impl InboundControl {
    /// Accepts streams of `protocol` from now on, up to the queue's capacity waiting; a
    /// stream beyond that is reset and reported to `on_overflow`.
    pub(crate) fn accept(
        &self,
        protocol: StreamProtocol,
        on_overflow: OnOverflow,
    ) -> Result<IncomingStreams, AlreadyAccepted> {
        let mut routes = self.routes.write();
        routes.retain(|_, route| !route.queue.is_closed());
        if routes.contains_key(&protocol) {
            return Err(AlreadyAccepted(protocol));
        }
        let (queue, receiver) = mpsc::channel(self.capacity);
        routes.insert(protocol, Route { queue, on_overflow });
        Ok(IncomingStreams { receiver })
    }
}

/// The streams of one protocol, in the order they were negotiated. Dropping it stops
/// accepting the protocol.
pub struct IncomingStreams {
    receiver: mpsc::Receiver<(PeerId, Stream)>,
}

impl IncomingStreams {
    /// The next stream and its peer; `None` once the network is gone. Cancel-safe.
    pub async fn next(&mut self) -> Option<(PeerId, Stream)> {
        self.receiver.recv().await
    }
}

/// The behaviour: one [`Handler`] per connection, nothing to do at the swarm level.
pub struct Behaviour {
    routes: Routes,
    capacity: usize,
}

impl Behaviour {
    /// A behaviour whose protocols each queue up to `capacity` streams (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            routes: Routes::default(),
            capacity: capacity.max(1),
        }
    }

    /// A control registering protocols with this behaviour.
    pub fn control(&self) -> InboundControl {
        InboundControl {
            routes: self.routes.clone(),
            capacity: self.capacity,
        }
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            routes: self.routes.clone(),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// One connection's side: offers the accepted protocols, queues what was negotiated.
pub struct Handler {
    peer: PeerId,
    routes: Routes,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Offer;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Offer> {
        SubstreamProtocol::new(
            Offer {
                protocols: self.routes.protocols(),
            },
            (),
        )
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Offer, DeniedUpgrade>) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            self.routes.deliver(self.peer, &protocol, stream);
        }
    }
}

/// The protocols offered to a peer opening a stream; negotiation yields the stream as is.
pub struct Offer {
    protocols: Vec<StreamProtocol>,
}

impl UpgradeInfo for Offer {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.protocols.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Offer {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}
