//! Test helpers: a relay on loopback and a raw device that speaks frames by hand.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod blobs;
mod federation;
mod rogue;

#[allow(unused_imports)] // each test binary uses some of them
pub use blobs::{BlobClient, BlobStream, naming_blob};
pub use federation::{RawRelayPeer, Stranger};
pub use rogue::{RogueRelay, home_record_naming, upload_keys};

use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::{AsyncReadExt, StreamExt, io::ReadHalf, io::WriteHalf};
use libp2p::{
    Multiaddr, Stream, StreamProtocol, Swarm, SwarmBuilder, noise, swarm::NetworkBehaviour, tcp,
    yamux,
};
use tidings_protocol::group::{Descriptor, GroupMember, Role, SignedDescriptor};
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, DeviceId, Envelope, EnvelopeId, Kind, RawEnvelope, Recipient,
    UserId,
    client::{CLIENT_PROTOCOL, ClientFrame, Register, RelayFrame, Request, Response},
    framing,
};
use tidings_relay::{
    RegistrationPolicy, RelayConfig, RunningRelay,
    testing::{self, Network, RelayDir, Scrape, loopback_config},
};

/// A relay and its data dir (deleted when this drops).
pub struct TestRelay {
    pub dir: RelayDir,
    pub relay: RunningRelay,
}

pub async fn start_relay(policy: RegistrationPolicy) -> TestRelay {
    start_tweaked(|config| config.registration.policy = policy, None).await
}

/// `count` relays forming one DHT (the first starts it, the others bootstrap from it), each
/// knowing all others before this returns.
pub async fn start_relays(count: usize) -> Vec<TestRelay> {
    start_relays_tweaked(count, |_| {}).await
}

/// As [`start_relays`], each relay's configuration changed by `tweak` first.
pub async fn start_relays_tweaked(
    count: usize,
    tweak: impl Fn(&mut RelayConfig),
) -> Vec<TestRelay> {
    Network::start(count, tweak)
        .await
        .unwrap()
        .into_parts()
        .into_iter()
        .map(|(dir, relay)| TestRelay {
            dir,
            relay: relay.unwrap(),
        })
        .collect()
}

/// Starts a relay (open registration) in a fresh dir, its configuration changed by `tweak`,
/// over a store that fails while `fault` is on (if given).
pub async fn start_tweaked(
    tweak: impl FnOnce(&mut RelayConfig),
    fault: Option<tidings_relay::store::fault::FaultSwitch>,
) -> TestRelay {
    let dir = RelayDir::temp(tweak).unwrap();
    let relay = dir.start(fault).await.unwrap();
    TestRelay { dir, relay }
}

/// Starts the relay initialized in `dir` again (on a fresh loopback port), its configuration
/// changed by `tweak`.
pub async fn restart_tweaked(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut RelayConfig),
) -> RunningRelay {
    let mut config = loopback_config();
    tweak(&mut config);
    RelayDir::existing(dir.to_path_buf(), config)
        .start(None)
        .await
        .unwrap()
}

/// GETs `path` from an HTTP/1.1 endpoint: the status code and the body.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    testing::http_get(address, path).await.unwrap()
}

/// The value of a series in Prometheus text (summed over the series of `name` whose labels
/// contain every one of `labels`, e.g. `reason="bad_signature"`); None if there is none.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    Scrape::parse(text).sum(name, labels)
}

/// A device with its keys, speaking the client protocol frame by frame.
pub struct RawDevice {
    pub account: SigningKey,
    pub device: SigningKey,
    /// The relay this device is connected to.
    pub relay: libp2p::PeerId,
    reader: ReadHalf<Stream>,
    pub writer: WriteHalf<Stream>,
    next_id: u64,
    buf: Vec<u8>,
}

/// Dials the relay at `address` (ending in `/p2p/<peer id>`) as `keypair` and opens one
/// stream of `protocol`; the swarm keeps running in the background.
async fn open_stream(
    keypair: libp2p::identity::Keypair,
    address: &Multiaddr,
    protocol: &'static str,
) -> Stream {
    let mut opener = StreamOpener::dial(keypair, address);
    tokio::time::timeout(Duration::from_secs(20), opener.open(protocol))
        .await
        .expect("the stream to the relay did not open in 20 s")
        .unwrap()
}

/// One connection to a relay (its swarm running in the background until [`Self::close`])
/// on which streams are opened one by one.
pub struct StreamOpener {
    control: libp2p_stream::Control,
    peer: libp2p::PeerId,
    swarm: tokio::task::JoinHandle<()>,
    /// Answered once the dial succeeded or failed; taken by the first [`Self::open`].
    connected: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>,
}

/// A swarm over TCP + Noise + Yamux as `keypair`, running the behaviour `make` builds;
/// connections stay open a minute after their last stream.
pub fn tcp_swarm<B: NetworkBehaviour>(
    keypair: libp2p::identity::Keypair,
    make: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> Swarm<B> {
    SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(make)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

impl StreamOpener {
    pub fn dial(keypair: libp2p::identity::Keypair, address: &Multiaddr) -> Self {
        let mut swarm = tcp_swarm(keypair, |_| libp2p_stream::Behaviour::new());
        let control = swarm.behaviour().new_control();
        let peer = tidings_client_peer(address);
        swarm.dial(address.clone()).unwrap();
        let (connected, connected_rx) = tokio::sync::oneshot::channel();
        let mut connected = Some(connected);
        let swarm = tokio::spawn(async move {
            loop {
                let outcome = match swarm.select_next_some().await {
                    libp2p::swarm::SwarmEvent::ConnectionEstablished { .. } => Ok(()),
                    libp2p::swarm::SwarmEvent::OutgoingConnectionError { error, .. } => {
                        Err(error.to_string())
                    }
                    _ => continue,
                };
                if let Some(connected) = connected.take() {
                    let _ = connected.send(outcome);
                }
            }
        });
        Self {
            control,
            peer,
            swarm,
            connected: Some(connected_rx),
        }
    }

    /// Opens another stream of `protocol` on the connection.
    ///
    /// The first call waits for the dial: libp2p-stream asked for a stream in the moment
    /// between a connection's handler being made and the connection being announced dials
    /// again, finds the peer connected, and leaves the request waiting for a connection that
    /// never comes (the rare hang of relay tests under load).
    pub async fn open(
        &mut self,
        protocol: &'static str,
    ) -> Result<Stream, libp2p_stream::OpenStreamError> {
        if let Some(connected) = self.connected.take() {
            let dialled = connected
                .await
                .unwrap_or_else(|_| Err("the swarm task ended".into()));
            if let Err(error) = dialled {
                return Err(libp2p_stream::OpenStreamError::Io(std::io::Error::other(
                    error,
                )));
            }
        }
        self.control
            .open_stream(self.peer, StreamProtocol::new(protocol))
            .await
    }

    /// Stops the swarm: the connection and every stream on it end.
    pub fn close(self) {
        self.swarm.abort();
    }
}

impl RawDevice {
    /// A new account's device, connected and registered.
    pub async fn registered(address: &Multiaddr) -> Self {
        let mut device = Self::connect(address).await;
        device.register().await;
        device
    }

    pub async fn connect(address: &Multiaddr) -> Self {
        let account = SigningKey::from_bytes(&rand::random());
        let device = SigningKey::from_bytes(&rand::random());
        Self::connect_as(address, account, device).await
    }

    pub async fn connect_as(address: &Multiaddr, account: SigningKey, device: SigningKey) -> Self {
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(device.to_bytes()).unwrap();
        let peer = tidings_client_peer(address);
        let stream = open_stream(keypair, address, CLIENT_PROTOCOL).await;
        let (reader, writer) = stream.split();
        Self {
            account,
            device,
            relay: peer,
            reader,
            writer,
            next_id: 1,
            buf: Vec::new(),
        }
    }

    pub fn address(&self) -> Address {
        address_of(&self.account, &self.device)
    }

    pub fn cert(&self) -> DeviceCert {
        cert_of(&self.account, &self.device)
    }

    pub async fn send_frame(&mut self, frame: &ClientFrame) {
        framing::write_frame(&mut self.writer, frame).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        framing::write_frames(&mut self.writer, bytes)
            .await
            .unwrap();
    }

    /// The next frame, or None if the relay closed the stream.
    pub async fn read(&mut self) -> Option<RelayFrame> {
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            framing::read_frame(&mut self.reader, &mut self.buf),
        )
        .await
        .expect("relay did not answer in time");
        match got {
            Ok(true) => Some(RelayFrame::decode(&self.buf).unwrap()),
            _ => None,
        }
    }

    pub async fn request(
        &mut self,
        body: Request,
    ) -> Result<Response, tidings_protocol::ErrorAnswer> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&ClientFrame::Request { id, body }).await;
        loop {
            match self.read().await {
                Some(RelayFrame::Response { id: got, body }) if got == id => return body,
                Some(_) => continue,
                None => panic!("stream closed while waiting for response {id}"),
            }
        }
    }

    /// Registers and publishes a home record naming the relay, as a client does.
    pub async fn register(&mut self) {
        let cert = self.cert();
        let answer = self
            .request(Request::Register(Box::new(Register {
                cert,
                invite: None,
                list: None,
            })))
            .await;
        let Ok(Response::Registered { relay_addrs, .. }) = answer else {
            panic!("registration failed: {answer:?}");
        };
        let home = tidings_protocol::HomeRecord::sign(
            &self.account,
            self.relay.to_string(),
            relay_addrs,
            tidings_protocol::now_ms(),
            tidings_protocol::now_ms() + tidings_protocol::home::HOME_RECORD_LIFETIME_MS,
        );
        let published = self.request(Request::PublishHome(Box::new(home))).await;
        assert_eq!(published, Ok(Response::HomePublished));
    }

    pub fn envelope_to(&self, to: Address, body: &[u8]) -> Envelope {
        Envelope {
            id: EnvelopeId::random(),
            sender: self.address(),
            recipient: Recipient::Direct(to),
            sent_at_ms: 1,
            kind: Kind::Message,
            body: body.to_vec(),
            blobs: Default::default(),
        }
    }

    pub async fn send(
        &mut self,
        envelopes: Vec<RawEnvelope>,
    ) -> Result<Response, tidings_protocol::ErrorAnswer> {
        self.request(Request::Send {
            envelopes: BoundedVec::new(envelopes).unwrap(),
        })
        .await
    }
}

impl RawDevice {
    /// Subscribes and reads the mailbox until caught up, acking what arrived: the envelopes
    /// in order (bounce notices are left out).
    pub async fn drain(&mut self) -> Vec<RawEnvelope> {
        assert!(matches!(
            self.request(Request::Subscribe).await,
            Ok(Response::Subscribed { .. })
        ));
        let mut got = Vec::new();
        loop {
            match self.read().await {
                Some(RelayFrame::Deliver { items }) => {
                    let mut last = 0;
                    for delivery in items.into_vec() {
                        last = delivery.seq;
                        if let tidings_protocol::MailboxItem::Envelope(raw) = delivery.item {
                            got.push(raw);
                        }
                    }
                    // The relay pushes a window ahead of the acks, no more.
                    self.send_frame(&ClientFrame::Ack { up_to: last }).await;
                }
                Some(RelayFrame::CaughtUp { .. }) => return got,
                Some(_) => continue,
                None => panic!("stream closed while draining the mailbox"),
            }
        }
    }
}

pub(crate) fn tidings_client_peer(address: &Multiaddr) -> libp2p::PeerId {
    address
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .unwrap()
}

/// The address of the device key `device` of the account key `account`.
pub fn address_of(account: &SigningKey, device: &SigningKey) -> Address {
    Address {
        user: UserId::from(&account.verifying_key()),
        device: DeviceId::from(&device.verifying_key()),
    }
}

/// The account's certificate for the device.
pub fn cert_of(account: &SigningKey, device: &SigningKey) -> DeviceCert {
    DeviceCert::issue(account, DeviceId::from(&device.verifying_key()), 1)
}

/// A group envelope of `kind` from `device` to `group`, signed.
pub fn group_envelope(
    device: &RawDevice,
    group: tidings_protocol::GroupId,
    kind: Kind,
    body: Vec<u8>,
) -> RawEnvelope {
    Envelope {
        id: EnvelopeId::random(),
        sender: device.address(),
        recipient: Recipient::Group(group),
        sent_at_ms: 1,
        kind,
        body,
        blobs: Default::default(),
    }
    .sign(&device.device)
}

/// A member list, sorted as a descriptor keeps it.
pub fn members(
    list: Vec<GroupMember>,
) -> BoundedVec<GroupMember, { tidings_protocol::limits::MAX_GROUP_MEMBERS }> {
    BoundedVec::new(Descriptor::normalize(list)).unwrap()
}

/// The first version of a new group "climbers" of the account's user (who must be an
/// admin in `list`); its id is derived from the account and a fresh salt.
pub fn genesis(account: &SigningKey, list: Vec<GroupMember>) -> SignedDescriptor {
    let author = UserId::from(&account.verifying_key());
    SignedDescriptor::sign(
        account,
        Descriptor::genesis(author, "climbers".into(), members(list)),
    )
}

/// The version after `known`, signed by `account`.
pub fn next(
    known: &SignedDescriptor,
    account: &SigningKey,
    list: Vec<GroupMember>,
) -> SignedDescriptor {
    let author = UserId::from(&account.verifying_key());
    SignedDescriptor::sign(
        account,
        Descriptor::successor(known, author, "climbers".into(), members(list)),
    )
}

pub fn member(user: UserId, role: Role) -> GroupMember {
    GroupMember { user, role }
}

/// Sends one envelope; its outcome.
pub async fn sent(
    device: &mut RawDevice,
    raw: RawEnvelope,
) -> tidings_protocol::client::SendOutcome {
    match device.send(vec![raw]).await {
        Ok(Response::Sent { outcomes }) => outcomes.into_vec().remove(0),
        other => panic!("unexpected {other:?}"),
    }
}
