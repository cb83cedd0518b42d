//! Another relay as a user's home record names it: its peer id and address hints.

use libp2p::{Multiaddr, PeerId};
use tidings_protocol::HomeRecord;

/// Another relay, as a user's home record describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// The relay.
    pub peer: PeerId,
    /// Its addresses (hints from the home record).
    pub addrs: Vec<Multiaddr>,
}

impl Remote {
    /// The relay a home record names, if its peer id parses.
    pub fn of(home: &HomeRecord) -> Option<Remote> {
        Some(Remote {
            peer: home.relay.parse().ok()?,
            addrs: home
                .addrs
                .iter()
                .filter_map(|address| address.parse().ok())
                .collect(),
        })
    }
}
