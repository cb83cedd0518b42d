//! Refuses a listen address that another socket already holds.
//!
//! libp2p's TCP transport sets `SO_REUSEPORT` on every listening socket, so a second relay
//! started on a taken port would bind it anyway and the kernel would split incoming
//! connections between the two processes (half of the dials reaching the wrong peer id).
//! Binding each fixed port once without that option first turns this into a clear error.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use libp2p::{Multiaddr, multiaddr::Protocol};

/// A listen address some other socket holds already.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}: {source} (is another relay or program using this port?)")]
pub struct AddressTaken {
    /// The configured address.
    pub address: Multiaddr,
    /// What binding it answered.
    pub source: std::io::Error,
}

/// The socket a listen address asks for: TCP or UDP (QUIC), with a fixed port.
enum Fixed {
    Tcp(SocketAddr),
    Udp(SocketAddr),
}

fn fixed_port(address: &Multiaddr) -> Option<Fixed> {
    let mut parts = address.iter();
    let ip: IpAddr = match parts.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match parts.next()? {
        Protocol::Tcp(port) if port != 0 => Some(Fixed::Tcp(SocketAddr::new(ip, port))),
        Protocol::Udp(port) if port != 0 => Some(Fixed::Udp(SocketAddr::new(ip, port))),
        _ => None,
    }
}

/// Checks that every listen address with a fixed port is free right now (ephemeral port 0
/// and DNS names are left to the transport).
pub fn ensure_free(addresses: &[Multiaddr]) -> Result<(), AddressTaken> {
    for address in addresses {
        let bound = match fixed_port(address) {
            Some(Fixed::Tcp(socket)) => TcpListener::bind(socket).map(drop),
            Some(Fixed::Udp(socket)) => UdpSocket::bind(socket).map(drop),
            None => Ok(()),
        };
        bound.map_err(|source| AddressTaken {
            address: address.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_tcp_port_is_refused_and_a_free_one_taken() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let taken: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let error = ensure_free(std::slice::from_ref(&taken)).unwrap_err();
        assert_eq!(error.address, taken);
        assert_eq!(error.source.kind(), std::io::ErrorKind::AddrInUse);
        drop(holder);
        ensure_free(&[taken]).unwrap();
    }

    #[test]
    fn a_taken_udp_port_is_refused() {
        let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let taken: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
            .parse()
            .unwrap();
        assert!(ensure_free(&[taken]).is_err());
    }

    #[test]
    fn ephemeral_ports_are_not_checked() {
        let any: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        ensure_free(&[any]).unwrap();
    }
}
