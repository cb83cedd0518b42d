//! Callers waiting for a connection to another relay before they open a stream on it.
//!
//! libp2p-stream dials on its own when asked for a stream to a peer it holds no connection
//! to, but it can lose that request: its dial queue holds one peer and drops the next
//! (rust-libp2p#6157), and a request in the moment between a connection's handler being made
//! and the connection being announced dials again, finds the peer connected, and waits for a
//! connection that never comes. So the relay connects first, here, and opens streams only
//! on connections that are announced.

use std::collections::HashMap;

use libp2p::PeerId;
use tokio::sync::oneshot;

/// Most peers with callers waiting for their connection at once.
pub const MAX_PEERS_CONNECTING: usize = 1024;

/// Most callers waiting for one peer's connection.
pub const MAX_WAITERS_PER_PEER: usize = 64;

/// The answer a caller waits for: connected, or why not.
pub type ConnectReply = oneshot::Sender<Result<(), String>>;

/// Callers waiting, by the peer they wait for.
#[derive(Default)]
pub(super) struct PendingConnects {
    waiting: HashMap<PeerId, Vec<ConnectReply>>,
}

impl PendingConnects {
    /// Queues `reply` until `peer` connects or fails; answers at once (and returns false)
    /// when the bounds are reached.
    pub fn wait(&mut self, peer: PeerId, reply: ConnectReply) -> bool {
        if !self.waiting.contains_key(&peer) && self.waiting.len() >= MAX_PEERS_CONNECTING {
            let _ = reply.send(Err("too many relays being connected at once".into()));
            return false;
        }
        let waiters = self.waiting.entry(peer).or_default();
        waiters.retain(|waiter| !waiter.is_closed());
        if waiters.len() >= MAX_WAITERS_PER_PEER {
            let _ = reply.send(Err("too many callers waiting for this relay".into()));
            return false;
        }
        waiters.push(reply);
        true
    }

    /// `peer` is connected (and announced): everyone waiting for it goes on.
    pub fn connected(&mut self, peer: &PeerId) {
        for reply in self.waiting.remove(peer).unwrap_or_default() {
            let _ = reply.send(Ok(()));
        }
    }

    /// Dialling `peer` failed.
    pub fn failed(&mut self, peer: &PeerId, error: &str) {
        for reply in self.waiting.remove(peer).unwrap_or_default() {
            let _ = reply.send(Err(error.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_hear_the_outcome_once_and_the_bounds_hold() {
        let mut pending = PendingConnects::default();
        let peer = PeerId::random();
        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        assert!(pending.wait(peer, first));
        assert!(pending.wait(peer, second));
        pending.connected(&peer);
        assert_eq!(first_rx.try_recv(), Ok(Ok(())));
        assert_eq!(second_rx.try_recv(), Ok(Ok(())));

        let (third, mut third_rx) = oneshot::channel();
        assert!(pending.wait(peer, third));
        pending.failed(&peer, "refused");
        assert_eq!(third_rx.try_recv(), Ok(Err("refused".to_string())));

        let mut receivers = Vec::new();
        for _ in 0..MAX_WAITERS_PER_PEER {
            let (reply, rx) = oneshot::channel();
            assert!(pending.wait(peer, reply));
            receivers.push(rx);
        }
        let (over, mut over_rx) = oneshot::channel();
        assert!(!pending.wait(peer, over));
        assert!(matches!(over_rx.try_recv(), Ok(Err(_))));

        for _ in 1..MAX_PEERS_CONNECTING {
            let (reply, rx) = oneshot::channel();
            assert!(pending.wait(PeerId::random(), reply));
            receivers.push(rx);
        }
        let (over, mut over_rx) = oneshot::channel();
        assert!(!pending.wait(PeerId::random(), over));
        assert!(matches!(over_rx.try_recv(), Ok(Err(_))));
    }
}
