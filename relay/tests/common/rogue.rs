//! A rogue relay: a bare Kademlia peer that puts any records it likes and opens federation
//! streams, and the signed keys and records such tests need.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::{Multiaddr, StreamProtocol};
use tidings_protocol::BoundedVec;

use super::{RawRelayPeer, tidings_client_peer};

/// A peer that joins the DHT by hand (Kademlia under the relays' protocol, no validation of
/// its own) and opens federation streams: what a rogue relay can do. Its swarm runs in the
/// background until dropped.
pub struct RogueRelay {
    pub keypair: libp2p::identity::Keypair,
    pub peer_id: libp2p::PeerId,
    control: libp2p_stream::Control,
    commands: tokio::sync::mpsc::Sender<RogueCommand>,
    swarm: tokio::task::JoinHandle<()>,
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct RogueBehaviour {
    kad: libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>,
    stream: libp2p_stream::Behaviour,
}

enum RogueCommand {
    /// Put `record` at `to`; the reply says whether `to` answered.
    Put {
        record: Box<libp2p::kad::Record>,
        to: libp2p::PeerId,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// Look a record up; the first one found.
    Get {
        key: libp2p::kad::RecordKey,
        reply: tokio::sync::oneshot::Sender<Option<libp2p::kad::Record>>,
    },
}

impl RogueRelay {
    /// Connects to the relay at `address` (ending in `/p2p/<peer id>`).
    pub async fn connect(address: &Multiaddr) -> Self {
        use libp2p::kad;
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = super::tcp_swarm(keypair.clone(), |key| {
            let peer = key.public().to_peer_id();
            let config = kad::Config::new(StreamProtocol::new(tidings_relay::KAD_PROTOCOL));
            RogueBehaviour {
                kad: kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config),
                stream: libp2p_stream::Behaviour::new(),
            }
        });
        let relay = tidings_client_peer(address);
        let mut bare = address.clone();
        bare.pop();
        swarm.behaviour_mut().kad.add_address(&relay, bare);
        swarm.dial(address.clone()).unwrap();
        let control = swarm.behaviour().stream.new_control();
        let (commands, mut asks) = tokio::sync::mpsc::channel::<RogueCommand>(16);
        let swarm = tokio::spawn(async move {
            let mut puts = std::collections::HashMap::new();
            let mut gets = std::collections::HashMap::new();
            loop {
                tokio::select! {
                    Some(ask) = asks.recv() => match ask {
                        RogueCommand::Put { record, to, reply } => {
                            let id = swarm.behaviour_mut().kad.put_record_to(
                                *record,
                                std::iter::once(to),
                                kad::Quorum::One,
                            );
                            puts.insert(id, reply);
                        }
                        RogueCommand::Get { key, reply } => {
                            let id = swarm.behaviour_mut().kad.get_record(key);
                            gets.insert(id, reply);
                        }
                    },
                    event = swarm.select_next_some() => {
                        let libp2p::swarm::SwarmEvent::Behaviour(RogueBehaviourEvent::Kad(
                            kad::Event::OutboundQueryProgressed { id, result, step, .. },
                        )) = event
                        else {
                            continue;
                        };
                        match result {
                            kad::QueryResult::PutRecord(result) => {
                                if let Some(reply) = puts.remove(&id) {
                                    let _ = reply.send(result.is_ok());
                                }
                            }
                            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                                if let Some(reply) = gets.remove(&id) {
                                    let _ = reply.send(Some(found.record));
                                }
                            }
                            kad::QueryResult::GetRecord(_) if step.last => {
                                if let Some(reply) = gets.remove(&id) {
                                    let _ = reply.send(None);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
        Self {
            keypair,
            peer_id,
            control,
            commands,
            swarm,
        }
    }

    /// Puts a DHT record (any bytes, any expiry) at the relay `to`; true if it answered.
    pub async fn put(&self, record: libp2p::kad::Record, to: libp2p::PeerId) -> bool {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.commands
            .send(RogueCommand::Put {
                record: Box::new(record),
                to,
                reply,
            })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("the DHT put did not finish")
            .unwrap_or(false)
    }

    /// Looks a DHT record up (the relays answer); the first found, with the expiry the
    /// answering relay gave it.
    pub async fn get(&self, key: libp2p::kad::RecordKey) -> Option<libp2p::kad::Record> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.commands
            .send(RogueCommand::Get { key, reply })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("the DHT lookup did not finish")
            .unwrap_or(None)
    }

    /// A home record of `account` naming this rogue relay, as a DHT record.
    pub fn home_record_naming_me(&self, account: &SigningKey) -> libp2p::kad::Record {
        home_record_naming(account, &self.peer_id.to_string(), 30 * 24 * 3600 * 1000)
    }
}

/// A signed home record of `account` naming `relay`, expiring `lifetime_ms` from now, as a
/// DHT record.
pub fn home_record_naming(
    account: &SigningKey,
    relay: &str,
    lifetime_ms: u64,
) -> libp2p::kad::Record {
    let home = tidings_protocol::HomeRecord::sign(
        account,
        relay.to_string(),
        BoundedVec::new(Vec::new()).unwrap(),
        tidings_protocol::now_ms(),
        tidings_protocol::now_ms() + lifetime_ms,
    );
    libp2p::kad::Record::new(
        tidings_protocol::HomeRecord::dht_key(&home.user),
        home.encode(),
    )
}

impl RogueRelay {
    /// Opens a federation stream to `relay`.
    pub async fn federation(&self, relay: libp2p::PeerId) -> RawRelayPeer {
        let stream = self
            .control
            .clone()
            .open_stream(
                relay,
                StreamProtocol::new(tidings_protocol::federation::FEDERATION_PROTOCOL),
            )
            .await
            .unwrap();
        RawRelayPeer::on_stream(self.peer_id, stream)
    }
}

impl Drop for RogueRelay {
    fn drop(&mut self) {
        self.swarm.abort();
    }
}

/// A device's Olm keys as a client uploads them: an identity key, `count` one-time keys and
/// a fallback key, all signed by the device key.
pub fn upload_keys(device: &SigningKey, count: usize) -> tidings_protocol::client::UploadKeys {
    use tidings_protocol::{IdentityKey, SignedPreKey};
    tidings_protocol::client::UploadKeys {
        identity: Some(IdentityKey::sign(device, rand::random())),
        one_time_keys: BoundedVec::new(
            (0..count)
                .map(|_| SignedPreKey::sign(device, rand::random(), false))
                .collect(),
        )
        .unwrap(),
        fallback: Some(SignedPreKey::sign(device, rand::random(), true)),
    }
}
