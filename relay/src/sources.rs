//! Where each connected peer connects from, so sessions can limit work per network source.
//!
//! libp2p hands a session only the peer id of its stream; the network event loop sees each
//! connection's remote address and records it here. Bounded by the connections the relay
//! holds (an entry goes with the peer's last connection) and by a hard cap.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

/// Most peers remembered at once (about 64 bytes each).
const MAX_PEERS: usize = 1 << 20;

/// A network source as limits see it: an IPv4 address, or the /64 an IPv6 address is in
/// (one subscriber usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// From an address (IPv6 cut to its /64).
    Ip(IpAddr),
    /// From somewhere not recorded (no IP in the address, or the map was full): all such
    /// peers share one source.
    Unknown,
}

impl Source {
    /// The source of a connection's remote address.
    pub fn of(address: &Multiaddr) -> Self {
        let ip = address.iter().find_map(|protocol| match protocol {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        });
        match ip {
            Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => Source::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(ip) & !((1u128 << 64) - 1);
                    Source::Ip(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
            Some(ip) => Source::Ip(ip),
            None => Source::Unknown,
        }
    }

    /// Whether it is this machine.
    pub fn is_loopback(self) -> bool {
        matches!(self, Source::Ip(ip) if ip.is_loopback())
    }
}

/// Connected peers' sources and how many connections each has.
#[derive(Debug, Default)]
pub(crate) struct PeerSources {
    peers: Mutex<HashMap<PeerId, (Source, usize)>>,
}

impl PeerSources {
    /// A connection of `peer` from `remote` was established.
    pub fn connected(&self, peer: PeerId, remote: &Multiaddr) {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            return;
        }
        let entry = peers.entry(peer).or_insert((Source::Unknown, 0));
        // The newest connection's address stands for the peer.
        entry.0 = Source::of(remote);
        entry.1 += 1;
    }

    /// A connection of `peer` closed.
    pub fn disconnected(&self, peer: &PeerId) {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(entry) = peers.get_mut(peer) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                peers.remove(peer);
            }
        }
    }

    /// Where `peer` connects from.
    pub fn source(&self, peer: &PeerId) -> Source {
        let peers = self
            .peers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        peers
            .get(peer)
            .map(|(source, _)| *source)
            .unwrap_or(Source::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_are_their_64_and_entries_go_with_the_last_connection() {
        let a: Multiaddr = "/ip6/2001:db8:1:2:aaaa::1/tcp/1".parse().unwrap();
        let b: Multiaddr = "/ip6/2001:db8:1:2:bbbb::9/udp/2/quic-v1".parse().unwrap();
        assert_eq!(Source::of(&a), Source::of(&b));
        let mapped: Multiaddr = "/ip6/::ffff:192.0.2.1/tcp/1".parse().unwrap();
        let v4: Multiaddr = "/ip4/192.0.2.1/tcp/7".parse().unwrap();
        assert_eq!(Source::of(&mapped), Source::of(&v4));
        assert!(Source::of(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()).is_loopback());
        assert_eq!(
            Source::of(&"/dns/example.org/tcp/1".parse().unwrap()),
            Source::Unknown
        );

        let sources = PeerSources::default();
        let peer = PeerId::random();
        sources.connected(peer, &v4);
        sources.connected(peer, &v4);
        sources.disconnected(&peer);
        assert_eq!(sources.source(&peer), Source::of(&v4));
        sources.disconnected(&peer);
        assert_eq!(sources.source(&peer), Source::Unknown);
        assert!(sources.peers.lock().unwrap().is_empty());
    }
}
