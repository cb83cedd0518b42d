//! Speaking for other relays in tests: a user of another relay (`Stranger`), and a peer
//! that speaks the federation protocol by hand (`RawRelayPeer`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::{AsyncReadExt, io::ReadHalf, io::WriteHalf};
use libp2p::{Multiaddr, Stream};
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, DeviceId, Envelope, EnvelopeId, Kind, RawEnvelope, Recipient,
    UserId, framing,
};

use super::{address_of, cert_of, rogue, tidings_client_peer};

/// A user of another relay, signing envelopes without being connected anywhere.
pub struct Stranger {
    pub account: SigningKey,
    pub device: SigningKey,
}

impl Stranger {
    pub fn new() -> Self {
        Self {
            account: SigningKey::from_bytes(&rand::random()),
            device: SigningKey::from_bytes(&rand::random()),
        }
    }

    pub fn address(&self) -> Address {
        address_of(&self.account, &self.device)
    }

    /// The account's certificate for the device.
    pub fn cert(&self) -> DeviceCert {
        cert_of(&self.account, &self.device)
    }

    /// A signed message envelope to `to`.
    pub fn envelope_to(&self, to: Address, body: &[u8]) -> RawEnvelope {
        Envelope {
            id: EnvelopeId::random(),
            sender: self.address(),
            recipient: Recipient::Direct(to),
            sent_at_ms: 1,
            kind: Kind::Message,
            body: body.to_vec(),
            blobs: Default::default(),
        }
        .sign(&self.device)
    }

    /// A forward item carrying `envelope` to its one (direct) recipient `to`.
    pub fn item(envelope: RawEnvelope, to: Address) -> tidings_protocol::federation::ForwardItem {
        tidings_protocol::federation::ForwardItem {
            envelope,
            recipients: BoundedVec::new(vec![to.user]).unwrap(),
            group_version: 0,
        }
    }
}

/// A peer speaking the federation protocol by hand (it may pose as any relay).
pub struct RawRelayPeer {
    /// Its peer id (what the relay rate-limits and checks handoffs against).
    pub peer_id: libp2p::PeerId,
    /// Its swarm, when it made its own connection (it can then put DHT records).
    rogue: Option<(rogue::RogueRelay, libp2p::PeerId)>,
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    next_id: u64,
    buf: Vec<u8>,
}

impl RawRelayPeer {
    pub async fn connect(address: &Multiaddr) -> Self {
        let rogue = rogue::RogueRelay::connect(address).await;
        let relay = tidings_client_peer(address);
        let mut peer = rogue.federation(relay).await;
        peer.rogue = Some((rogue, relay));
        peer
    }

    /// Makes this peer the home relay of `stranger`, as far as the relay it talks to can
    /// tell: puts a home record signed by the stranger's account naming this peer in the
    /// relay's DHT store (a rogue relay can do this for accounts it made up).
    pub async fn vouch_for(&self, stranger: &Stranger) {
        let (rogue, relay) = self.rogue.as_ref().expect("a peer with its own swarm");
        assert!(
            rogue
                .put(rogue.home_record_naming_me(&stranger.account), *relay)
                .await,
            "the relay did not take the home record"
        );
    }

    /// Speaks the federation protocol on a stream `peer_id` opened.
    pub fn on_stream(peer_id: libp2p::PeerId, stream: Stream) -> Self {
        let (reader, writer) = stream.split();
        Self {
            peer_id,
            rogue: None,
            reader,
            writer,
            next_id: 1,
            buf: Vec::new(),
        }
    }

    /// Writes bytes as they are (frames made by hand, or garbage).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        framing::write_frames(&mut self.writer, bytes)
            .await
            .unwrap();
    }

    /// The next frame from the relay; None once the relay closed the stream (or it failed).
    pub async fn read(&mut self) -> Option<tidings_protocol::federation::FederationFrame> {
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            framing::read_frame(&mut self.reader, &mut self.buf),
        )
        .await
        .expect("relay did not answer or close in time");
        match got {
            Ok(true) => {
                Some(tidings_protocol::federation::FederationFrame::decode(&self.buf).unwrap())
            }
            _ => None,
        }
    }

    /// Forwards items with the certificates of `senders`; one outcome per recipient.
    pub async fn forward(
        &mut self,
        items: Vec<tidings_protocol::federation::ForwardItem>,
        senders: &[&Stranger],
    ) -> Vec<tidings_protocol::client::SendOutcome> {
        use tidings_protocol::federation::{FederationRequest, FederationResponse};
        let items = BoundedVec::new(items).unwrap();
        let certs = BoundedVec::new(senders.iter().map(|s| s.cert()).collect()).unwrap();
        match self
            .request(FederationRequest::Forward { items, certs })
            .await
        {
            Ok(FederationResponse::Stored { outcomes }) => outcomes.into_vec(),
            other => panic!("unexpected {other:?}"),
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
