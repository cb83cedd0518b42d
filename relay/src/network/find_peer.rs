//! Finding where a relay this one has no address for can be dialed: a Kademlia walk towards
//! its peer id, then a dial with the addresses the walk found.

use std::collections::HashMap;

use libp2p::{
    Multiaddr, PeerId,
    kad::{self, GetClosestPeersError, GetClosestPeersOk, QueryId},
};
use tokio::sync::oneshot;

use super::record_store::BoundedStore;

/// Walks in flight, by query, each with the callers waiting for it.
#[derive(Default)]
pub(super) struct PeerFinds {
    walks: HashMap<QueryId, (PeerId, Vec<oneshot::Sender<bool>>)>,
    by_peer: HashMap<PeerId, QueryId>,
}

impl PeerFinds {
    /// Starts (or joins) a walk towards `peer`.
    pub fn find(
        &mut self,
        kad: &mut kad::Behaviour<BoundedStore>,
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    ) {
        if let Some((_, replies)) = self
            .by_peer
            .get(&peer)
            .and_then(|id| self.walks.get_mut(id))
        {
            replies.push(reply);
            return;
        }
        let id = kad.get_closest_peers(peer);
        self.by_peer.insert(peer, id);
        self.walks.insert(id, (peer, vec![reply]));
    }

    /// Ends the walk `id` if it is one of ours: the addresses found for its peer (none if
    /// the walk did not meet it), after telling the callers whether any were.
    pub fn on_result(
        &mut self,
        id: QueryId,
        result: Result<GetClosestPeersOk, GetClosestPeersError>,
    ) -> Option<(PeerId, Vec<Multiaddr>)> {
        let (peer, replies) = self.walks.remove(&id)?;
        self.by_peer.remove(&peer);
        let peers = match result {
            Ok(ok) => ok.peers,
            Err(GetClosestPeersError::Timeout { peers, .. }) => peers,
        };
        let addrs = peers
            .into_iter()
            .find(|info| info.peer_id == peer)
            .map(|info| info.addrs)
            .unwrap_or_default();
        tracing::debug!(%peer, found = addrs.len(), "looked for a relay's addresses");
        for reply in replies {
            let _ = reply.send(!addrs.is_empty());
        }
        Some((peer, addrs))
    }
}
