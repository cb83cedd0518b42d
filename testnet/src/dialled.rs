//! A dialling swarm run in its own task, with word of when its first connection is up.
//!
//! libp2p-stream cannot be asked for a stream until the connection is announced: a request
//! that comes between the connection's handler being made and the announcement dials again,
//! finds the peer connected, and waits for a connection that never comes.

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, Swarm, SwarmEvent};
use tokio::{sync::oneshot, task::JoinHandle};

/// Runs `swarm` (which has a dial under way) until the task is aborted; the receiver says
/// whether its first connection came up or why the dial failed.
pub fn run_dialled<B>(
    mut swarm: Swarm<B>,
) -> (JoinHandle<()>, oneshot::Receiver<Result<(), String>>)
where
    B: NetworkBehaviour + Send + 'static,
{
    let (connected, connected_rx) = oneshot::channel();
    let mut connected = Some(connected);
    let task = tokio::spawn(async move {
        loop {
            let outcome = match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => Ok(()),
                SwarmEvent::OutgoingConnectionError { error, .. } => Err(error.to_string()),
                _ => continue,
            };
            if let Some(connected) = connected.take() {
                let _ = connected.send(outcome);
            }
        }
    });
    (task, connected_rx)
}

/// Waits for the answer of [`run_dialled`].
pub async fn connected(answer: oneshot::Receiver<Result<(), String>>) -> anyhow::Result<()> {
    answer
        .await
        .map_err(|_| anyhow::anyhow!("the swarm task ended before connecting"))?
        .map_err(|error| anyhow::anyhow!("dialling the relay failed: {error}"))
}
