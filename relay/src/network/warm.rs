//! Links to other relays kept open while idle, so a forward or a lookup never waits for a dial.
//!
//! libp2p closes a connection once no stream has been open for the idle timeout. That is
//! right for devices (their session stream keeps them up while they are there) and wrong for
//! relay links: the next forward, or the next DHT request, would pay a new TCP + Noise +
//! Yamux handshake. A connection whose peer identified itself as a relay (it speaks the
//! Tidings DHT) is marked warm here, and its handler keeps it alive until it breaks.

use std::{
    collections::{HashSet, VecDeque},
    convert::Infallible,
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse, upgrade::DeniedUpgrade},
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent,
        ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm, handler::ConnectionEvent,
    },
};

/// Most connections kept warm at once. A peer only has to claim the DHT protocol to be
/// taken for a relay, so the set is bounded; connections beyond it idle out as usual.
pub const MAX_WARM_LINKS: usize = 1024;

/// The behaviour: which connections are warm, and the notices for their handlers.
#[derive(Default)]
pub struct Behaviour {
    warm: HashSet<ConnectionId>,
    notices: VecDeque<(PeerId, ConnectionId)>,
}

impl Behaviour {
    /// Keeps `connection` to `peer` open while idle. Returns false if the bound was reached
    /// (the connection then idles out as any other).
    pub fn keep_warm(&mut self, peer: PeerId, connection: ConnectionId) -> bool {
        if self.warm.contains(&connection) {
            return true;
        }
        if self.warm.len() >= MAX_WARM_LINKS {
            return false;
        }
        self.warm.insert(connection);
        self.notices.push_back((peer, connection));
        true
    }

    /// Connections kept warm now.
    pub fn warm_links(&self) -> usize {
        self.warm.len()
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) = event {
            self.warm.remove(&connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.notices.pop_front() {
            // A notice for a connection closed meanwhile is dropped by the swarm.
            Some((peer_id, connection)) => Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: KeepWarm,
            }),
            None => Poll::Pending,
        }
    }
}

/// Tells a connection's handler to keep the connection open while idle.
#[derive(Debug, Clone, Copy)]
pub struct KeepWarm;

/// One connection's side: no protocol of its own, only the keep-alive flag.
#[derive(Default)]
pub struct Handler {
    warm: bool,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = KeepWarm;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.warm
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, _: KeepWarm) {
        self.warm = true;
    }

    fn on_connection_event(&mut self, _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_links_are_bounded_and_a_closed_one_frees_its_place() {
        let mut behaviour = Behaviour::default();
        let peer = PeerId::random();
        for id in 0..MAX_WARM_LINKS {
            assert!(behaviour.keep_warm(peer, ConnectionId::new_unchecked(id)));
        }
        let beyond = ConnectionId::new_unchecked(MAX_WARM_LINKS);
        assert!(!behaviour.keep_warm(peer, beyond));
        assert!(
            behaviour.keep_warm(peer, ConnectionId::new_unchecked(0)),
            "a warm link stays warm"
        );
        assert_eq!(behaviour.warm_links(), MAX_WARM_LINKS);
        let endpoint = libp2p::core::ConnectedPoint::Listener {
            local_addr: Multiaddr::empty(),
            send_back_addr: Multiaddr::empty(),
        };
        behaviour.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(3),
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }));
        assert_eq!(behaviour.warm_links(), MAX_WARM_LINKS - 1);
        assert!(
            behaviour.keep_warm(peer, beyond),
            "a closed link frees its place"
        );
    }
}
