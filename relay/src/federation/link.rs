//! Outbound federation streams: one per remote relay, requests matched to answers by id.
//!
//! The links actor owns the table of open links (remote relay -> the request queue of the
//! task that owns its stream); nothing else reads or changes it. A caller that finds no
//! open link opens the stream itself and hands the new link to the actor, so opening a
//! stream to one relay never holds up requests to another.

use std::{collections::HashMap, time::Duration};

use libp2p::{PeerId, StreamProtocol};
use tidings_protocol::federation::{FEDERATION_PROTOCOL, FederationRequest, FederationResponse};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    link_stream::{LinkError, REQUEST_TIMEOUT, Reply},
    remote::Remote,
};
use crate::network::NetworkHandle;

/// How long opening a stream to a relay may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a request is tried on a fresh stream when the stream breaks before the answer.
const LINK_ATTEMPTS: u32 = 4;

/// Requests queued on one link before callers wait.
const LINK_QUEUE: usize = 64;

/// Commands queued for the links actor before callers wait.
const LINKS_INBOX: usize = 1024;

/// Where requests for one link go.
type LinkSender = mpsc::Sender<(FederationRequest, Reply)>;

enum Command {
    /// The open link to a relay, if there is one.
    Get {
        peer: PeerId,
        reply: oneshot::Sender<Option<LinkSender>>,
    },
    /// A link just opened (replacing whatever was there).
    Insert { peer: PeerId, link: LinkSender },
}

/// Links to other relays. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Links {
    control: libp2p_stream::Control,
    network: NetworkHandle,
    inbox: mpsc::Sender<Command>,
}

/// The table of open links; [`LinksActor::run`] serves it.
pub(crate) struct LinksActor {
    inbox: mpsc::Receiver<Command>,
    links: HashMap<PeerId, LinkSender>,
}

impl LinksActor {
    /// Serves commands until every handle is gone or `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        while let Some(command) = crate::actor::next_command(&mut self.inbox, &stop).await {
            match command {
                Command::Get { peer, reply } => {
                    let link = self.links.get(&peer).filter(|link| !link.is_closed());
                    let _ = reply.send(link.cloned());
                }
                Command::Insert { peer, link } => {
                    self.links.retain(|_, link| !link.is_closed());
                    self.links.insert(peer, link);
                }
            }
        }
    }
}

impl Links {
    /// The links and the actor owning their table (spawn [`LinksActor::run`]).
    pub fn new(control: libp2p_stream::Control, network: NetworkHandle) -> (Self, LinksActor) {
        let (inbox, commands) = mpsc::channel(LINKS_INBOX);
        let actor = LinksActor {
            inbox: commands,
            links: HashMap::new(),
        };
        let links = Self {
            control,
            network,
            inbox,
        };
        (links, actor)
    }

    /// Notices of relays that just connected (see [`NetworkHandle::relays_up`]).
    pub fn relays_up(&self) -> tokio::sync::broadcast::Receiver<PeerId> {
        self.network.relays_up()
    }

    async fn existing(&self, peer: PeerId) -> Option<LinkSender> {
        let (reply, answer) = oneshot::channel();
        self.inbox.send(Command::Get { peer, reply }).await.ok()?;
        answer.await.ok().flatten()
    }

    async fn link(&self, remote: &Remote) -> Result<LinkSender, LinkError> {
        if let Some(link) = self.existing(remote.peer).await {
            return Ok(link);
        }
        // Connected first: libp2p-stream's own dial can lose the request (network/connects.rs).
        tokio::time::timeout(
            OPEN_TIMEOUT,
            self.network.connect(remote.peer, remote.addrs.clone()),
        )
        .await
        .map_err(|_| LinkError::Unreachable("timed out connecting".into()))?
        .map_err(LinkError::Unreachable)?;
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
        let insert = Command::Insert {
            peer: remote.peer,
            link: sender.clone(),
        };
        let _ = self.inbox.send(insert).await;
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
        link: LinkSender,
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
