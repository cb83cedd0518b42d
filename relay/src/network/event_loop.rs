//! The event loop that owns the Swarm: commands in, swarm events handled, nothing else.

use std::sync::Arc;

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, connection_limits, identify, kad,
    swarm::{
        DialError, ListenError, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    BehaviourEvent, Command, DhtStats, KAD_PROTOCOL, SwarmBehaviour,
    connects::{ConnectReply, PendingConnects},
    dht::Dht,
    find_peer::PeerFinds,
};
use crate::{metrics::Metrics, sources::PeerSources};

/// Owns the Swarm and drives it until shutdown.
pub struct EventLoop {
    swarm: Swarm<SwarmBehaviour>,
    commands: mpsc::Receiver<Command>,
    listen_addrs: watch::Sender<Vec<Multiaddr>>,
    dht: Dht,
    /// Walks towards relays known by id only.
    finds: PeerFinds,
    /// Callers waiting for a connection before they open a stream.
    connects: PendingConnects,
    /// The DHT counters `dht` keeps, for `/metrics`.
    dht_stats: Arc<DhtStats>,
    /// Where swarm events are counted (libp2p's own metrics, connections).
    metrics: Arc<Metrics>,
    /// Where each connected peer connects from, for per-source limits.
    sources: Arc<PeerSources>,
    /// Where relays that identified themselves are announced.
    relays_up: broadcast::Sender<PeerId>,
}

impl EventLoop {
    pub(super) fn new(
        swarm: Swarm<SwarmBehaviour>,
        commands: mpsc::Receiver<Command>,
        listen_addrs: watch::Sender<Vec<Multiaddr>>,
        stats: Arc<DhtStats>,
        relays_up: broadcast::Sender<PeerId>,
    ) -> Self {
        Self {
            swarm,
            commands,
            listen_addrs,
            dht: Dht::new(stats.clone()),
            finds: PeerFinds::default(),
            connects: PendingConnects::default(),
            dht_stats: stats,
            metrics: Arc::new(Metrics::default()),
            sources: Arc::new(PeerSources::default()),
            relays_up,
        }
    }

    /// Records connected peers' remote addresses in `sources`.
    pub(crate) fn with_sources(mut self, sources: Arc<PeerSources>) -> Self {
        self.sources = sources;
        self
    }

    /// Counts swarm events in `metrics` (otherwise in a private set nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Drives the swarm until `shutdown` fires; dropping the swarm then closes every connection.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.metrics.network_running(true, &self.dht_stats);
        if self.swarm.behaviour_mut().kad.bootstrap().is_err() {
            tracing::info!("no bootstrap relays: this relay starts a new network");
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(command) = self.commands.recv() => self.on_command(command),
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
        self.metrics.network_running(false, &self.dht_stats);
        tracing::debug!("network event loop stopped");
    }

    fn on_command(&mut self, command: Command) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        match command {
            Command::PutHome { record, reply } => {
                self.dht.put_home(kad, &record);
                let _ = reply.send(());
            }
            Command::GetHome {
                user,
                lookup,
                reply,
            } => self.dht.get_home(kad, user, lookup, reply),
            Command::RoutingPeers { reply } => {
                let peers = kad.kbuckets().map(|bucket| bucket.num_entries()).sum();
                let _ = reply.send(peers);
            }
            Command::AddAddresses { peer, addrs } => {
                for address in addrs {
                    kad.add_address(&peer, address);
                }
            }
            Command::SetBlocked { peer, blocked } => {
                let list = &mut self.swarm.behaviour_mut().blocked;
                if blocked {
                    list.block_peer(peer);
                } else {
                    list.unblock_peer(peer);
                }
                tracing::info!(%peer, blocked, "relay link blocked or unblocked");
            }
            Command::FindPeer { peer, reply } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(true);
                } else {
                    self.finds
                        .find(&mut self.swarm.behaviour_mut().kad, peer, reply);
                }
            }
            Command::ForgetHome { user } => {
                self.dht
                    .forget_home(&mut self.swarm.behaviour_mut().kad, &user);
            }
            Command::Connect { peer, addrs, reply } => self.connect(peer, addrs, reply),
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event),
            // Relays (peers speaking our DHT protocol) join the routing table, and their
            // link stays open while idle.
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                connection_id,
                info,
            })) if info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) => {
                let behaviour = self.swarm.behaviour_mut();
                for address in info.listen_addrs {
                    behaviour.kad.add_address(&peer_id, address);
                }
                if !behaviour.warm.keep_warm(peer_id, connection_id) {
                    tracing::debug!(%peer_id, "warm relay links at their bound; this one may idle out");
                }
                self.metrics.set_warm_links(behaviour.warm.warm_links());
                // No listener is fine: nothing backs off from anyone yet.
                let _ = self.relays_up.send(peer_id);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.send_modify(|addrs| addrs.push(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs
                    .send_modify(|addrs| addrs.retain(|known| *known != address));
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "listener error");
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                tracing::error!(
                    ?addresses,
                    ?reason,
                    "listener closed: the relay no longer listens there"
                );
                self.listen_addrs
                    .send_modify(|addrs| addrs.retain(|known| !addresses.contains(known)));
                self.metrics.listener_closed();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!(%peer_id, "connection established");
                self.connects.connected(&peer_id);
                self.sources
                    .connected(peer_id, endpoint.get_remote_address());
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                self.sources.disconnected(&peer_id);
                self.metrics
                    .set_warm_links(self.swarm.behaviour().warm.warm_links());
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "outgoing connection failed");
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                {
                    self.connects.failed(&peer, &error.to_string());
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                send_back_addr,
                ..
            } if cause
                .downcast_ref::<connection_limits::Exceeded>()
                .is_some() =>
            {
                self.metrics.connection_refused();
                tracing::info!(%send_back_addr, ?cause, "connection refused: over a connection limit");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "incoming connection failed");
            }
            _ => {}
        }
    }

    /// Answers `reply` once `peer` is connected: at once if it is, else after a dial (or the
    /// one under way) at `addrs` and the addresses the DHT holds for it.
    fn connect(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, reply: ConnectReply) {
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        for address in &addrs {
            kad.add_address(&peer, address.clone());
        }
        if !self.connects.wait(peer, reply) {
            return;
        }
        let opts = DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing);
        let opts = if addrs.is_empty() {
            opts.build()
        } else {
            opts.addresses(addrs)
                .extend_addresses_through_behaviour()
                .build()
        };
        match self.swarm.dial(opts) {
            // Dialling already: the waiters hear how that dial ends.
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
            Err(error) => self.connects.failed(&peer, &error.to_string()),
        }
    }

    /// Dials `peer` at `addrs` unless connected or dialing already (a stream opened meanwhile
    /// waits for this connection).
    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .addresses(addrs)
            .build();
        if let Err(error) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %error, "not dialing a relay");
        }
    }

    /// Counts an event in libp2p's metrics (swarm, Kademlia, identify, ping).
    fn record(&self, event: &SwarmEvent<BehaviourEvent>) {
        self.metrics.swarm_event(event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.metrics.libp2p_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => {
                self.metrics.libp2p_event(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.metrics.libp2p_event(event),
            _ => {}
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                self.dht.on_inbound_put(kad, source, record);
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                ..
            } => {
                if step.last
                    && let Some((peer, addrs)) = self.finds.on_result(id, result)
                    && !addrs.is_empty()
                {
                    self.dial(peer, addrs);
                }
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                self.dht.on_query(kad, id, result, &stats, step.last);
            }
            kad::Event::RoutingUpdated { peer, .. } => {
                tracing::debug!(%peer, "relay joined the routing table");
            }
            _ => {}
        }
    }
}
