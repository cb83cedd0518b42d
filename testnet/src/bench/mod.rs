//! `tidings-testnet bench NAME`: bounded benchmarks against relay processes on loopback,
//! with real clients (their stores, Olm sessions and commits) on both ends.

pub mod drain;
pub mod throughput;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use tidings_client::Client;
use tidings_protocol::EnvelopeId;

use crate::scenario::users;

/// The contact name each side of a pair gives the other.
pub const PEER: &str = "peer";

/// When each message was handed to its sender's client, to time its arrival.
#[derive(Clone, Default)]
pub struct SendTimes(Arc<Mutex<HashMap<EnvelopeId, Instant>>>);

impl SendTimes {
    /// Notes that `ids` were queued now.
    pub fn queued(&self, ids: impl IntoIterator<Item = EnvelopeId>) {
        let now = Instant::now();
        let mut times = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        times.extend(ids.into_iter().map(|id| (id, now)));
    }

    /// Milliseconds since `id` was queued, if it was.
    pub fn since(&self, id: &EnvelopeId) -> Option<f64> {
        let times = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        times.get(id).map(|at| at.elapsed().as_secs_f64() * 1000.0)
    }
}

/// Makes each pair (sender `2i`, receiver `2i + 1`) contacts of each other, and sends one
/// message each way so the Olm sessions exist before anything is timed.
pub async fn introduce_pairs(clients: &[Client]) -> anyhow::Result<()> {
    for pair in clients.chunks_exact(2) {
        let (sender, receiver) = (&pair[0], &pair[1]);
        sender.add_contact(PEER, &receiver.card(None)?)?;
        receiver.add_contact(PEER, &sender.card(None)?)?;
        for (from, to) in [(sender, receiver), (receiver, sender)] {
            let mut session = users::connect(from).await;
            session.send_text(PEER, "hello").await?;
            session.close().await;
            let mut session = users::connect(to).await;
            session.sync(std::time::Duration::from_secs(5)).await?;
            session.close().await;
        }
    }
    Ok(())
}
