//! Stand-ins for the relay a blob was uploaded to: one that cuts its first stream short, one
//! that other relays can reach only after looking it up in the DHT.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, kad, swarm::SwarmEvent};
use tidings_protocol::{
    BlobAnswer, BlobData, BlobRequest,
    blob::{BLOB_FEDERATION_PROTOCOL, MAX_BLOB_DATA_BYTES},
    framing,
};

use crate::common::tcp_swarm;

/// The offsets a stand-in was asked to send from, in order.
pub type Asked = Arc<Mutex<Vec<u64>>>;

/// Serves `bytes` on the relays' blob protocol from whatever offset is asked, cutting the
/// first stream after `cut` bytes.
fn serve(mut incoming: libp2p_stream::IncomingStreams, bytes: Vec<u8>, cut: usize) -> Asked {
    let asked = Asked::default();
    let noted = asked.clone();
    tokio::spawn(async move {
        let mut first = true;
        while let Some((_, stream)) = incoming.next().await {
            let (mut reader, mut writer) = stream.split();
            let mut buf = Vec::new();
            let _ = framing::read_frame(&mut reader, &mut buf).await;
            let Ok(BlobRequest::Download { offset, .. }) = BlobRequest::decode(&buf) else {
                continue;
            };
            noted.lock().unwrap().push(offset);
            let size = bytes.len() as u64;
            let _ = framing::write_frame(&mut writer, &BlobAnswer::Sending { size, offset }).await;
            let end = if first {
                cut.min(bytes.len())
            } else {
                bytes.len()
            };
            first = false;
            for chunk in bytes[offset as usize..end].chunks(MAX_BLOB_DATA_BYTES) {
                let data = BlobData {
                    bytes: chunk.to_vec(),
                };
                let _ = framing::write_frame(&mut writer, &data).await;
            }
            let _ = writer.close().await;
        }
    });
    asked
}

/// A peer connected to the relay at `address` taking streams on the relays' blob protocol:
/// its id and those streams, to answer as the test likes.
pub fn blob_peer(address: &Multiaddr) -> (PeerId, libp2p_stream::IncomingStreams) {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let mut swarm = tcp_swarm(keypair, |_| libp2p_stream::Behaviour::new());
    let incoming = swarm
        .behaviour()
        .new_control()
        .accept(StreamProtocol::new(BLOB_FEDERATION_PROTOCOL))
        .unwrap();
    swarm.dial(address.clone()).unwrap();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (peer, incoming)
}

/// A peer connected to the relay at `address` serving `bytes`, its first stream cut after
/// `cut` bytes; the offsets it was asked for.
pub fn cutting_relay(address: &Multiaddr, bytes: Vec<u8>, cut: usize) -> (PeerId, Asked) {
    let (peer, incoming) = blob_peer(address);
    (peer, serve(incoming, bytes, cut))
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct DhtPeer {
    stream: libp2p_stream::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    identify: identify::Behaviour,
}

/// A peer with `keypair` serving `bytes` that listens on loopback and joins the DHT
/// (Kademlia server, its addresses told through identify) through the relay at `hub`.
/// Returns once its own first walk ended: relays that refused it meanwhile know it by id only.
pub async fn dht_only_relay(
    hub: &Multiaddr,
    keypair: libp2p::identity::Keypair,
    bytes: Vec<u8>,
) -> PeerId {
    let peer = keypair.public().to_peer_id();
    let mut swarm = tcp_swarm(keypair, |key| {
        let mut config = kad::Config::new(StreamProtocol::new(tidings_relay::KAD_PROTOCOL));
        config.set_periodic_bootstrap_interval(None);
        let mut kad = kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config);
        kad.set_mode(Some(kad::Mode::Server));
        DhtPeer {
            stream: libp2p_stream::Behaviour::new(),
            kad,
            identify: identify::Behaviour::new(identify::Config::new(
                "/tidings/relay/1".into(),
                key.public(),
            )),
        }
    });
    let incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(StreamProtocol::new(BLOB_FEDERATION_PROTOCOL))
        .unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    // Listening before dialing, so identify tells the hub where to reach it.
    loop {
        if let SwarmEvent::NewListenAddr { .. } = swarm.select_next_some().await {
            break;
        }
    }
    swarm.dial(hub.clone()).unwrap();
    // Kademlia walks by itself once the hub is in its table (libp2p-kad cannot be told not to).
    let walked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let SwarmEvent::Behaviour(DhtPeerEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::Bootstrap(_),
                step,
                ..
            })) = swarm.select_next_some().await
                && step.last
            {
                break;
            }
        }
    })
    .await;
    assert!(walked.is_ok(), "the stand-in never walked the DHT");
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    serve(incoming, bytes, usize::MAX);
    peer
}
