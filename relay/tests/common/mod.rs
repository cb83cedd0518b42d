//! Test helpers: a relay on loopback and a raw device that speaks frames by hand.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::{AsyncReadExt, StreamExt, io::ReadHalf, io::WriteHalf};
use libp2p::{Multiaddr, Stream, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
use tempfile::TempDir;
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, DeviceId, Envelope, EnvelopeId, Kind, RawEnvelope, Recipient,
    UserId,
    client::{CLIENT_PROTOCOL, ClientFrame, Register, RelayFrame, Request, Response},
    framing,
};
use tidings_relay::{RegistrationPolicy, RelayConfig, RelayOptions, RunningRelay};

pub struct TestRelay {
    pub dir: TempDir,
    pub relay: RunningRelay,
}

pub async fn start_relay(policy: RegistrationPolicy) -> TestRelay {
    start_relay_with(policy, Vec::new()).await
}

/// `count` relays forming one DHT (the first starts it, the others bootstrap from it), each
/// knowing all others before this returns.
pub async fn start_relays(count: usize) -> Vec<TestRelay> {
    let mut relays: Vec<TestRelay> = Vec::new();
    for _ in 0..count {
        let bootstrap = relays
            .first()
            .map(|first| vec![first.relay.tcp_dial_addr().unwrap().to_string()])
            .unwrap_or_default();
        relays.push(start_relay_with(RegistrationPolicy::Open, bootstrap).await);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for relay in &relays {
        while relay.relay.routing_peers().await < count - 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the DHT did not form"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    relays
}

pub async fn start_relay_with(policy: RegistrationPolicy, bootstrap: Vec<String>) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_in(dir.path(), policy, bootstrap, true).await;
    TestRelay { dir, relay }
}

/// Starts a relay in `dir` on a fresh loopback port (initializing the dir if asked).
pub async fn start_in(
    dir: &std::path::Path,
    policy: RegistrationPolicy,
    bootstrap: Vec<String>,
    init: bool,
) -> RunningRelay {
    let mut config = RelayConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        bootstrap,
        ..RelayConfig::default()
    };
    config.registration.policy = policy;
    if init {
        tidings_relay::init(dir, &config).unwrap();
    }
    tidings_relay::start(RelayOptions {
        data_dir: dir.to_path_buf(),
        config,
        fault: None,
    })
    .await
    .unwrap()
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
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let mut control = swarm.behaviour().new_control();
    let peer = tidings_client_peer(address);
    swarm.dial(address.clone()).unwrap();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    control
        .open_stream(peer, StreamProtocol::new(protocol))
        .await
        .unwrap()
}

impl RawDevice {
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
        Address {
            user: UserId::from(&self.account.verifying_key()),
            device: DeviceId::from(&self.device.verifying_key()),
        }
    }

    pub fn cert(&self) -> DeviceCert {
        DeviceCert::issue(&self.account, self.address().device, 1)
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
            .request(Request::Register(Box::new(Register { cert, invite: None })))
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

fn tidings_client_peer(address: &Multiaddr) -> libp2p::PeerId {
    address
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .unwrap()
}

/// A peer speaking the federation protocol by hand (it may pose as any relay).
pub struct RawRelayPeer {
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    next_id: u64,
    buf: Vec<u8>,
}

impl RawRelayPeer {
    pub async fn connect(address: &Multiaddr) -> Self {
        let stream = open_stream(
            libp2p::identity::Keypair::generate_ed25519(),
            address,
            tidings_protocol::federation::FEDERATION_PROTOCOL,
        )
        .await;
        let (reader, writer) = stream.split();
        Self {
            reader,
            writer,
            next_id: 1,
            buf: Vec::new(),
        }
    }

    pub async fn request(
        &mut self,
        body: tidings_protocol::federation::FederationRequest,
    ) -> Result<tidings_protocol::federation::FederationResponse, tidings_protocol::ErrorAnswer>
    {
        use tidings_protocol::federation::FederationFrame;
        let id = self.next_id;
        self.next_id += 1;
        framing::write_frame(&mut self.writer, &FederationFrame::Request { id, body })
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            framing::read_frame(&mut self.reader, &mut self.buf),
        )
        .await
        .expect("relay did not answer")
        .unwrap();
        match FederationFrame::decode(&self.buf).unwrap() {
            FederationFrame::Response { id: got, body } if got == id => body,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The group version the relay holds.
    pub async fn group_version(&mut self, group: tidings_protocol::GroupId) -> u64 {
        use tidings_protocol::federation::{FederationRequest, FederationResponse};
        match self
            .request(FederationRequest::GroupVersion { group })
            .await
        {
            Ok(FederationResponse::GroupVersion(version)) => version,
            other => panic!("unexpected {other:?}"),
        }
    }
}
