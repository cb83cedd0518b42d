//! Outbound federation streams: one per remote relay, requests matched to answers by id.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use libp2p::{PeerId, StreamProtocol};
use tidings_protocol::{
    ErrorAnswer,
    federation::{FEDERATION_PROTOCOL, FederationRequest, FederationResponse},
};
use tokio::sync::{mpsc, oneshot};

use super::directory::Remote;
use crate::network::NetworkHandle;

/// How long opening a stream to a relay may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a request is tried on a fresh stream when the stream breaks before the answer.
const LINK_ATTEMPTS: u32 = 4;

/// Requests queued on one link before callers wait.
const LINK_QUEUE: usize = 64;

/// Why a request to another relay got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    /// The relay could not be reached or the stream broke.
    #[error("relay unreachable: {0}")]
    Unreachable(String),
    /// The relay refused, with its reason.
    #[error("relay refused: {0}")]
    Refused(ErrorAnswer),
    /// No answer in time.
    #[error("relay did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
}

pub(super) type Reply = oneshot::Sender<Result<FederationResponse, LinkError>>;

/// Open links to other relays.
pub(crate) struct Links {
    control: libp2p_stream::Control,
    network: NetworkHandle,
    links: Mutex<HashMap<PeerId, mpsc::Sender<(FederationRequest, Reply)>>>,
}

impl Links {
    pub fn new(control: libp2p_stream::Control, network: NetworkHandle) -> Self {
        Self {
            control,
            network,
            links: Mutex::new(HashMap::new()),
        }
    }

    fn existing(&self, peer: &PeerId) -> Option<mpsc::Sender<(FederationRequest, Reply)>> {
        let links = self
            .links
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        links.get(peer).filter(|link| !link.is_closed()).cloned()
    }

    async fn link(
        &self,
        remote: &Remote,
    ) -> Result<mpsc::Sender<(FederationRequest, Reply)>, LinkError> {
        if let Some(link) = self.existing(&remote.peer) {
            return Ok(link);
        }
        self.network
            .add_addresses(remote.peer, remote.addrs.clone())
            .await;
        let mut control = self.control.clone();
        let stream = tokio::time::timeout(
            OPEN_TIMEOUT,
            control.open_stream(remote.peer, StreamProtocol::new(FEDERATION_PROTOCOL)),
        )
        .await
        .map_err(|_| LinkError::Unreachable("timed out opening a stream".into()))?
        .map_err(|error| LinkError::Unreachable(error.to_string()))?;
        let (sender, receiver) = mpsc::channel(LINK_QUEUE);
        tokio::spawn(super::link_stream::run(stream, receiver));
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        links.retain(|_, link| !link.is_closed());
        links.insert(remote.peer, sender.clone());
        Ok(sender)
    }

    /// Sends a request to `remote` and waits for the answer. A stream that breaks before the
    /// answer is replaced, a few times with a short pause: a relay that gets many new
    /// streams at once drops some unread (libp2p-stream keeps no queue of them). Every
    /// request is safe to repeat (the receiver dedupes by envelope id, and a repeated claim
    /// only uses up another one-time key).
    pub async fn request(
        &self,
        remote: &Remote,
        request: FederationRequest,
    ) -> Result<FederationResponse, LinkError> {
        let mut attempt = 1;
        loop {
            let link = self.link(remote).await?;
            match Self::send_on(link, request.clone()).await {
                Err(LinkError::Unreachable(reason)) if attempt < LINK_ATTEMPTS => {
                    tracing::debug!(peer = %remote.peer, %reason, attempt, "federation stream broke; retrying on a new one");
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_on(
        link: mpsc::Sender<(FederationRequest, Reply)>,
        request: FederationRequest,
    ) -> Result<FederationResponse, LinkError> {
        let (reply, answer) = oneshot::channel();
        link.send((request, reply))
            .await
            .map_err(|_| LinkError::Unreachable("link closed".into()))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LinkError::Unreachable("link closed".into())),
            Err(_) => Err(LinkError::Timeout),
        }
    }
}
