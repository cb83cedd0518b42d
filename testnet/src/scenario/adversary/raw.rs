//! Malicious users' raw client streams: a device key, one `/tidings/client/1` stream, and
//! every client frame the attacks send, crafted by hand (kept here so a wire change is one
//! local edit).

use std::{collections::VecDeque, time::Duration};

use anyhow::{Context, anyhow, bail};
use ed25519_dalek::SigningKey;
use futures::{
    AsyncReadExt,
    io::{ReadHalf, WriteHalf},
};
use libp2p::{Multiaddr, Stream};
use tidings_keys::{Identity, OlmAccount};
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, ErrorAnswer, HomeRecord, KeyBundle, RawEnvelope, UserId,
    client::{
        CLIENT_PROTOCOL, ClientFrame, Register, RelayFrame, Request, Response, SendOutcome,
        UploadKeys,
    },
    framing,
    presence::PresenceReport,
};
use tokio::task::JoinHandle;

use super::{craft, dialer::Dialer, rogue::split_peer};

/// How long a raw request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Pushed frames kept while waiting for answers; older ones are dropped.
const MAX_PUSHES: usize = 1024;

/// One-time keys a raw attacker publishes (so honest clients can answer it).
const ONE_TIME_KEYS: usize = 10;

/// A device's raw client stream to its relay.
pub struct RawClient {
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    next_id: u64,
    buf: Vec<u8>,
    /// Frames the relay pushed (not answers), oldest first.
    pub pushes: VecDeque<RelayFrame>,
    swarm: JoinHandle<()>,
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.swarm.abort();
    }
}

impl RawClient {
    /// Connects as the device holding `device_key` to the relay at `relay` (ending in
    /// `/p2p/<peer id>`) and opens a client stream.
    pub async fn connect(device_key: &SigningKey, relay: &Multiaddr) -> anyhow::Result<Self> {
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(device_key.to_bytes())?;
        let (stream, swarm) = open_stream(keypair, relay, CLIENT_PROTOCOL).await?;
        let (reader, writer) = stream.split();
        Ok(Self {
            reader,
            writer,
            next_id: 1,
            buf: Vec::new(),
            pushes: VecDeque::new(),
            swarm,
        })
    }

    /// The next frame the relay sends (None: the stream ended, or nothing within `wait`).
    pub async fn next_frame(&mut self, wait: Duration) -> anyhow::Result<Option<RelayFrame>> {
        match tokio::time::timeout(wait, framing::read_frame(&mut self.reader, &mut self.buf)).await
        {
            Err(_) => Ok(None),
            Ok(Ok(true)) => Ok(Some(RelayFrame::decode(&self.buf)?)),
            Ok(Ok(false)) => Ok(None),
            Ok(Err(error)) => Err(error.into()),
        }
    }

    /// Whether the relay closed the stream (or said it would) within `wait`, reading and
    /// dropping whatever else it sends meanwhile.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let read = tokio::time::timeout_at(
                deadline,
                framing::read_frame(&mut self.reader, &mut self.buf),
            )
            .await;
            match read {
                Err(_) => return false,
                Ok(Ok(true)) => {
                    if let Ok(RelayFrame::Fatal(_)) = RelayFrame::decode(&self.buf) {
                        return true;
                    }
                }
                Ok(Ok(false)) | Ok(Err(_)) => return true,
            }
        }
    }

    /// Sends a request and waits for its answer, keeping pushed frames in [`Self::pushes`].
    pub async fn request(
        &mut self,
        body: Request,
    ) -> anyhow::Result<Result<Response, ErrorAnswer>> {
        let id = self.next_id;
        self.next_id += 1;
        framing::write_frame(&mut self.writer, &ClientFrame::Request { id, body }).await?;
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            loop {
                if !framing::read_frame(&mut self.reader, &mut self.buf).await? {
                    bail!("the relay closed the stream");
                }
                match RelayFrame::decode(&self.buf)? {
                    RelayFrame::Response { id: got, body } if got == id => return Ok(body),
                    RelayFrame::Fatal(answer) => bail!("the relay closed the stream: {answer}"),
                    other => {
                        if self.pushes.len() >= MAX_PUSHES {
                            self.pushes.pop_front();
                        }
                        self.pushes.push_back(other);
                    }
                }
            }
        })
        .await
        .context("the relay did not answer in time")?
    }

    /// Registers the device under the account `cert` names; the one-time keys the relay
    /// holds for it, and the relay's addresses.
    pub async fn register(&mut self, cert: DeviceCert) -> anyhow::Result<(u32, Vec<String>)> {
        let register = Request::Register(Box::new(Register {
            cert,
            invite: None,
            list: None,
        }));
        match self.request(register).await? {
            Ok(Response::Registered {
                one_time_keys,
                relay_addrs,
                ..
            }) => Ok((one_time_keys, relay_addrs.into_vec())),
            other => bail!("registration refused: {other:?}"),
        }
    }

    /// Publishes Olm keys.
    pub async fn upload_keys(&mut self, upload: UploadKeys) -> anyhow::Result<()> {
        match self.request(Request::UploadKeys(Box::new(upload))).await? {
            Ok(Response::KeysUploaded { .. }) => Ok(()),
            other => bail!("keys refused: {other:?}"),
        }
    }

    /// Publishes a home record.
    pub async fn publish_home(&mut self, record: HomeRecord) -> anyhow::Result<()> {
        match self.request(Request::PublishHome(Box::new(record))).await? {
            Ok(Response::HomePublished) => Ok(()),
            other => bail!("home record refused: {other:?}"),
        }
    }

    /// Claims a key bundle of device `device`.
    pub async fn claim(&mut self, device: Address) -> anyhow::Result<KeyBundle> {
        match self.request(Request::ClaimBundle { device }).await? {
            Ok(Response::Bundle(bundle)) => Ok(*bundle),
            other => bail!("claim refused: {other:?}"),
        }
    }

    /// Sends envelopes; one outcome each (or the refusal of the whole request).
    pub async fn send(
        &mut self,
        envelopes: Vec<RawEnvelope>,
    ) -> anyhow::Result<Result<Vec<SendOutcome>, ErrorAnswer>> {
        let request = Request::Send {
            envelopes: BoundedVec::new(envelopes)?,
        };
        Ok(match self.request(request).await? {
            Ok(Response::Sent { outcomes }) => Ok(outcomes.into_vec()),
            Ok(other) => return Err(anyhow!("unexpected answer {other:?}")),
            Err(refusal) => Err(refusal),
        })
    }

    /// Passes a typing notice; how many devices or relays the relay says it reached.
    pub async fn ephemeral(
        &mut self,
        envelope: RawEnvelope,
    ) -> anyhow::Result<Result<u32, ErrorAnswer>> {
        Ok(match self.request(Request::Ephemeral { envelope }).await? {
            Ok(Response::EphemeralPassed { reached }) => Ok(reached),
            Ok(other) => return Err(anyhow!("unexpected answer {other:?}")),
            Err(refusal) => Err(refusal),
        })
    }

    /// Watches users' presence: what the relay says now.
    pub async fn watch(&mut self, users: Vec<UserId>) -> anyhow::Result<Vec<PresenceReport>> {
        let request = Request::WatchPresence {
            users: BoundedVec::new(users)?,
        };
        match self.request(request).await? {
            Ok(Response::Presence { reports }) => Ok(reports.into_vec()),
            other => bail!("watch refused: {other:?}"),
        }
    }

    /// Subscribes (the device counts as online and gets its mailbox pushed).
    pub async fn subscribe(&mut self) -> anyhow::Result<()> {
        match self.request(Request::Subscribe).await? {
            Ok(Response::Subscribed { .. }) => Ok(()),
            other => bail!("subscription refused: {other:?}"),
        }
    }
}

/// A malicious user with a raw device: keys in memory, registered with a relay, with an
/// Olm account honest clients can open sessions to.
pub struct RawUser {
    /// Account and device keys.
    pub identity: Identity,
    /// Its Olm account.
    pub olm: OlmAccount,
    /// Its stream to its home relay.
    pub client: RawClient,
}

impl RawUser {
    /// Makes a new account, registers its device at `relay`, publishes Olm keys and a home
    /// record naming the relay (open registration lets anyone do this).
    pub async fn register(relay: &Multiaddr) -> anyhow::Result<RawUser> {
        let identity = Identity::generate();
        let mut olm = OlmAccount::new();
        let mut client = RawClient::connect(identity.device_key(), relay).await?;
        let (_, relay_addrs) = client.register(identity.cert().clone()).await?;
        let upload = UploadKeys {
            identity: Some(olm.identity_key(&identity)),
            one_time_keys: BoundedVec::new(olm.generate_one_time_keys(&identity, ONE_TIME_KEYS))?,
            fallback: Some(olm.rotate_fallback_key(&identity)),
        };
        client.upload_keys(upload).await?;
        let (peer, _) = split_peer(relay)?;
        let home = craft::home_record(identity.account_key(), peer, relay_addrs, None)?;
        client.publish_home(home).await?;
        Ok(RawUser {
            identity,
            olm,
            client,
        })
    }
}

/// Dials `address` as `keypair` in a swarm of its own (running until the handle is
/// aborted) and opens one stream of `protocol`.
async fn open_stream(
    keypair: libp2p::identity::Keypair,
    address: &Multiaddr,
    protocol: &'static str,
) -> anyhow::Result<(Stream, JoinHandle<()>)> {
    let mut dialer = Dialer::dial(keypair, address)?;
    let stream = dialer.open(protocol).await?;
    Ok((stream, dialer.into_task()))
}
