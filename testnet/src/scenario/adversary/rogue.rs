//! The malicious relay: an in-process libp2p peer with its own key that speaks
//! `/tidings/federation/1` and Kademlia to the honest relays, and every federation frame the
//! attacks send (kept here so a wire change is one local edit).

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use futures::{
    AsyncReadExt, StreamExt,
    io::{ReadHalf, WriteHalf},
};
use libp2p::{
    Multiaddr, PeerId, Stream, StreamProtocol, SwarmBuilder, identify,
    identity::Keypair,
    kad::{
        self, GetRecordOk, PeerRecord, QueryId, QueryResult, Quorum, Record, RecordKey,
        store::MemoryStore,
    },
    multiaddr::Protocol,
    noise,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, ErrorAnswer, GroupId, RawEnvelope, UserId,
    client::SendOutcome,
    federation::{
        FEDERATION_PROTOCOL, FederationFrame, FederationRequest, FederationResponse, ForwardItem,
    },
    framing,
    group::SignedDescriptor,
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use tidings_relay::KAD_PROTOCOL;

use ed25519_dalek::SigningKey;

use super::craft;

/// What relays announce through identify; the rogue poses as one of them.
const IDENTIFY_PROTOCOL: &str = "/tidings/relay/1";

/// How long one federation request may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one DHT put or get may take.
const DHT_TIMEOUT: Duration = Duration::from_secs(15);

/// Commands queued for the rogue's swarm before callers wait.
const COMMAND_QUEUE: usize = 64;

/// What the rogue answers on federation streams honest relays open to it.
pub type Answerer =
    Arc<dyn Fn(FederationRequest) -> Result<FederationResponse, ErrorAnswer> + Send + Sync>;

#[derive(NetworkBehaviour)]
struct RogueBehaviour {
    stream: libp2p_stream::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
}

enum Command {
    Put {
        record: Record,
        /// Only these peers (none: the DHT's closest, and the rogue's own store).
        to: Vec<PeerId>,
        reply: oneshot::Sender<bool>,
    },
    Get {
        key: RecordKey,
        reply: oneshot::Sender<Vec<PeerRecord>>,
    },
}

/// The rogue relay: its swarm runs in a background task until dropped.
pub struct Rogue {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Where honest relays can dial it (with `/p2p/<peer id>`).
    pub addr: Multiaddr,
    control: libp2p_stream::Control,
    commands: mpsc::Sender<Command>,
    swarm: JoinHandle<()>,
    serving: Option<JoinHandle<()>>,
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.swarm.abort();
        if let Some(serving) = &self.serving {
            serving.abort();
        }
    }
}

impl Rogue {
    /// Starts the rogue on loopback and dials every relay in `relays` (dial addresses ending
    /// in `/p2p/<peer id>`), joining their DHT.
    pub async fn start(relays: &[Multiaddr]) -> anyhow::Result<Rogue> {
        let keypair = Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|key| {
                let config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
                let mut kad =
                    kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), config);
                kad.set_mode(Some(kad::Mode::Server));
                RogueBehaviour {
                    stream: libp2p_stream::Behaviour::new(),
                    kad,
                    identify: identify::Behaviour::new(identify::Config::new(
                        IDENTIFY_PROTOCOL.into(),
                        key.public(),
                    )),
                }
            })?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(3600))
            })
            .build();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let bound = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        for relay in relays {
            let (peer, bare) = split_peer(relay)?;
            swarm.behaviour_mut().kad.add_address(&peer, bare);
            swarm.dial(relay.clone())?;
        }
        let control = swarm.behaviour().stream.new_control();
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let swarm = tokio::spawn(drive(swarm, receiver));
        Ok(Rogue {
            peer_id,
            addr: bound.with(Protocol::P2p(peer_id)),
            control,
            commands,
            swarm,
            serving: None,
        })
    }

    /// Answers federation streams honest relays open to the rogue with `answer`.
    pub fn serve(&mut self, answer: Answerer) -> anyhow::Result<()> {
        let mut incoming = self
            .control
            .accept(StreamProtocol::new(FEDERATION_PROTOCOL))
            .map_err(|error| anyhow!("accepting federation streams: {error}"))?;
        self.serving = Some(tokio::spawn(async move {
            while let Some((_, stream)) = incoming.next().await {
                tokio::spawn(answer_stream(stream, answer.clone()));
            }
        }));
        Ok(())
    }

    /// The rogue's bare listen address (without `/p2p`), as a home record names it.
    pub fn bare_addr(&self) -> String {
        self.addr
            .iter()
            .filter(|protocol| !matches!(protocol, Protocol::P2p(_)))
            .collect::<Multiaddr>()
            .to_string()
    }

    /// Opens a federation stream to `relay`, as if the rogue were another relay.
    pub async fn open(&self, relay: PeerId) -> anyhow::Result<FederationStream> {
        let mut control = self.control.clone();
        let stream = tokio::time::timeout(
            OPEN_TIMEOUT,
            control.open_stream(relay, StreamProtocol::new(FEDERATION_PROTOCOL)),
        )
        .await
        .context("opening a federation stream timed out")??;
        Ok(FederationStream::new(stream))
    }

    /// Sends a Kademlia PUT of `record` to `to` only (none: the closest peers and the
    /// rogue's own store); true if a peer took it.
    pub async fn put(&self, record: Record, to: Vec<PeerId>) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Put { record, to, reply })
            .await
            .map_err(|_| anyhow!("the rogue's swarm stopped"))?;
        Ok(tokio::time::timeout(DHT_TIMEOUT, answer)
            .await
            .unwrap_or(Ok(false))
            .unwrap_or(false))
    }

    /// Becomes the home relay of `account`'s user for the DHT (a home record it signs naming
    /// the rogue, newer than any before): what a rogue relay does for accounts it made up,
    /// or for a user who moves to it. Then its forwards pass the relays' origin check, and
    /// only the checks of what they carry stand in the way.
    pub async fn adopt(&self, account: &SigningKey) -> anyhow::Result<()> {
        let home = craft::home_record(account, self.peer_id, vec![self.bare_addr()], None)?;
        if !self.put(craft::kad_record(&home), Vec::new()).await? {
            bail!("no relay took the rogue's home record for {}", home.user);
        }
        Ok(())
    }

    /// Every copy of the record under `key` the DHT returned, with the peer that held it.
    pub async fn get(&self, key: RecordKey) -> anyhow::Result<Vec<PeerRecord>> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Get { key, reply })
            .await
            .map_err(|_| anyhow!("the rogue's swarm stopped"))?;
        Ok(tokio::time::timeout(DHT_TIMEOUT, answer)
            .await
            .unwrap_or(Ok(Vec::new()))
            .unwrap_or_default())
    }
}

/// Splits `/.../p2p/<peer>` into the peer and the address before it.
pub fn split_peer(address: &Multiaddr) -> anyhow::Result<(PeerId, Multiaddr)> {
    let mut bare = address.clone();
    match bare.pop() {
        Some(Protocol::P2p(peer)) => Ok((peer, bare)),
        _ => bail!("{address} does not end in /p2p/<peer id>"),
    }
}

/// Runs the swarm: commands in, Kademlia results out to whoever asked.
async fn drive(mut swarm: libp2p::Swarm<RogueBehaviour>, mut commands: mpsc::Receiver<Command>) {
    let mut puts: HashMap<QueryId, oneshot::Sender<bool>> = HashMap::new();
    let mut gets: HashMap<QueryId, (Vec<PeerRecord>, oneshot::Sender<Vec<PeerRecord>>)> =
        HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Put { record, to, reply }) => {
                    let kad = &mut swarm.behaviour_mut().kad;
                    let id = if to.is_empty() {
                        match kad.put_record(record, Quorum::One) {
                            Ok(id) => id,
                            Err(_) => {
                                let _ = reply.send(false);
                                continue;
                            }
                        }
                    } else {
                        kad.put_record_to(record, to.into_iter(), Quorum::One)
                    };
                    puts.insert(id, reply);
                }
                Some(Command::Get { key, reply }) => {
                    let id = swarm.behaviour_mut().kad.get_record(key);
                    gets.insert(id, (Vec::new(), reply));
                }
            },
            event = swarm.select_next_some() => {
                let SwarmEvent::Behaviour(RogueBehaviourEvent::Kad(
                    kad::Event::OutboundQueryProgressed { id, result, step, .. },
                )) = event else {
                    continue;
                };
                match result {
                    QueryResult::PutRecord(result) => {
                        if let Some(reply) = puts.remove(&id) {
                            let _ = reply.send(result.is_ok());
                        }
                    }
                    QueryResult::GetRecord(result) => {
                        if let (Ok(GetRecordOk::FoundRecord(found)), Some((records, _))) =
                            (result, gets.get_mut(&id))
                        {
                            records.push(found);
                        }
                        if step.last && let Some((records, reply)) = gets.remove(&id) {
                            let _ = reply.send(records);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Serves one federation stream an honest relay opened to the rogue.
async fn answer_stream(stream: Stream, answer: Answerer) {
    let (mut reader, mut writer) = stream.split();
    let mut buf = Vec::new();
    while let Ok(true) = framing::read_frame(&mut reader, &mut buf).await {
        let Ok(FederationFrame::Request { id, body }) = FederationFrame::decode(&buf) else {
            return;
        };
        let response = FederationFrame::Response {
            id,
            body: answer(body),
        };
        if framing::write_frame(&mut writer, &response).await.is_err() {
            return;
        }
    }
}

/// One federation stream from the rogue to an honest relay: requests answered by id.
pub struct FederationStream {
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    next_id: u64,
    buf: Vec<u8>,
}

impl FederationStream {
    fn new(stream: Stream) -> Self {
        let (reader, writer) = stream.split();
        Self {
            reader,
            writer,
            next_id: 1,
            buf: Vec::new(),
        }
    }

    /// Sends a request and waits (at most `wait`) for its answer.
    pub async fn request_within(
        &mut self,
        body: FederationRequest,
        wait: Duration,
    ) -> anyhow::Result<Result<FederationResponse, ErrorAnswer>> {
        let id = self.next_id;
        self.next_id += 1;
        framing::write_frame(&mut self.writer, &FederationFrame::Request { id, body }).await?;
        tokio::time::timeout(wait, async {
            loop {
                if !framing::read_frame(&mut self.reader, &mut self.buf).await? {
                    bail!("the relay closed the federation stream");
                }
                match FederationFrame::decode(&self.buf)? {
                    FederationFrame::Response { id: got, body } if got == id => return Ok(body),
                    _ => continue,
                }
            }
        })
        .await
        .context("the relay did not answer in time")?
    }

    /// Sends a request and waits for its answer ([`REQUEST_TIMEOUT`]).
    pub async fn request(
        &mut self,
        body: FederationRequest,
    ) -> anyhow::Result<Result<FederationResponse, ErrorAnswer>> {
        self.request_within(body, REQUEST_TIMEOUT).await
    }
}

// Every federation request the attacks make, built here.

/// A forward item: `envelope` for `recipients` homed at the receiving relay, fanned out by
/// `group_version` (0 for direct envelopes). The rogue has no certificate to show for a
/// device that is not the sender user's: whatever a forward must prove, it proves nothing.
pub fn forward_item(
    envelope: RawEnvelope,
    recipients: Vec<UserId>,
    group_version: u64,
) -> anyhow::Result<ForwardItem> {
    Ok(ForwardItem {
        envelope,
        recipients: BoundedVec::new(recipients)?,
        group_version,
    })
}

/// `Forward` of these items, with the device certificates the rogue holds (its own users'):
/// whatever a forward must prove about its senders, that is all it can show.
pub fn forward(
    items: Vec<ForwardItem>,
    certs: Vec<DeviceCert>,
) -> anyhow::Result<FederationRequest> {
    Ok(FederationRequest::Forward {
        items: BoundedVec::new(items)?,
        certs: BoundedVec::new(certs)?,
    })
}

/// `ClaimBundles` of these devices (repeats allowed: each claim takes a one-time key),
/// asked for `requester`, a user the rogue is the home of.
pub fn claim_bundles(
    devices: Vec<Address>,
    requester: UserId,
) -> anyhow::Result<FederationRequest> {
    Ok(FederationRequest::ClaimBundles {
        devices: BoundedVec::new(devices)?,
        requester,
    })
}

/// `Descriptors`: descriptor versions "to bring the relay up to date".
pub fn descriptors(versions: Vec<SignedDescriptor>) -> anyhow::Result<FederationRequest> {
    Ok(FederationRequest::Descriptors {
        versions: BoundedVec::new(versions)?,
    })
}

/// `GroupVersion`: which version of `group` the relay holds (0: none).
pub fn group_version(group: GroupId) -> FederationRequest {
    FederationRequest::GroupVersion { group }
}

/// `Ephemeral`: pass a typing notice to these users' live devices.
pub fn ephemeral(
    envelope: RawEnvelope,
    recipients: Vec<UserId>,
    cert: DeviceCert,
) -> anyhow::Result<FederationRequest> {
    Ok(FederationRequest::Ephemeral {
        envelope,
        recipients: BoundedVec::new(recipients)?,
        cert,
    })
}

/// `WatchPresence`: `watcher` (whose home the rogue claims to be) watches `users`.
pub fn watch_presence(watcher: UserId, users: Vec<UserId>) -> anyhow::Result<FederationRequest> {
    Ok(FederationRequest::WatchPresence {
        watcher,
        users: BoundedVec::new(users)?,
    })
}

/// Whether a `Forward` answer stored anything, and what `relay` said, for a detail.
pub fn judge_forward(
    answer: Result<FederationResponse, ErrorAnswer>,
    relay: &str,
) -> (bool, String) {
    match answer {
        Ok(FederationResponse::Stored { outcomes }) => {
            let said: Vec<String> = outcomes.iter().map(outcome_text).collect();
            (
                outcomes.iter().any(SendOutcome::is_stored),
                format!("{relay} answered [{}]", said.join(", ")),
            )
        }
        Ok(other) => (false, format!("{relay} answered {other:?}")),
        Err(refusal) => (false, format!("{relay} refused the request: {refusal}")),
    }
}

/// One outcome, short.
pub fn outcome_text(outcome: &SendOutcome) -> String {
    match outcome {
        SendOutcome::Accepted => "accepted".into(),
        SendOutcome::Duplicate => "duplicate".into(),
        SendOutcome::Rejected(answer) => format!("rejected {}", answer.code),
    }
}
