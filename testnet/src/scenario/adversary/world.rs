//! The network under attack: relay processes, honest users chatting 1:1 and in a group,
//! Mallory (a group member removed before the attacks), the rogue relay, and fresh probe
//! users that attacks use to observe what an honest party sees.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use libp2p::{Multiaddr, PeerId};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use tidings_client::{Client, KEY_FILE, MessageRecord};
use tidings_keys::Identity;
use tidings_protocol::{ContactCard, EnvelopeId, GroupId, presence::PresenceReport};
use tokio::sync::Mutex;

use super::{GROUP, rogue::Rogue};
use crate::{
    cluster::Cluster,
    scenario::{
        chaos::Planned,
        users::{self, name},
    },
};

/// How long group set-up may take to reach every member.
const SETUP_PATIENCE: Duration = Duration::from_secs(30);

/// How often observers look at a store again.
pub const POLL: Duration = Duration::from_millis(200);

/// What attacks need to know of one relay process, without locking the cluster.
#[derive(Debug, Clone)]
pub struct RelayView {
    /// Dial address with `/p2p/<peer id>`.
    pub addr: Multiaddr,
    /// Peer id.
    pub peer: PeerId,
    /// Where `/metrics` is served, if it is.
    pub metrics: Option<std::net::SocketAddr>,
    /// Data directory (`relay.redb` lives there).
    pub data_dir: PathBuf,
}

impl RelayView {
    /// The sum of a metric's series called `name` (or `name_total`) whose labels contain
    /// `labels`; 0 if there is none.
    pub async fn metric(&self, name: &str, labels: &str) -> anyhow::Result<f64> {
        let address = self.metrics.context("the relay serves no metrics")?;
        let scrape = tidings_relay::testing::scrape(address).await?;
        Ok(scrape.sum(name, &[labels]).unwrap_or(0.0))
    }

    /// Size of the relay's database file in bytes.
    pub fn store_bytes(&self) -> u64 {
        std::fs::metadata(self.data_dir.join(tidings_relay::STORE_FILE))
            .map(|meta| meta.len())
            .unwrap_or(0)
    }
}

/// Everything attacks may use or observe.
pub struct World {
    /// The relay processes (locked only to cut links).
    pub cluster: Mutex<Cluster>,
    /// The relays, index i being relay i+1.
    pub relays: Vec<RelayView>,
    /// Honest users: user i is homed on relay i % relays. 0 is Alice (the group's admin),
    /// 1 is Bob.
    pub honest: Vec<Client>,
    /// Their data dirs.
    pub honest_dirs: Vec<PathBuf>,
    /// The group every honest user is in (Mallory was, until version 2).
    pub group: GroupId,
    /// Mallory: a full client homed on relay 1, removed from the group.
    pub mallory: Client,
    /// Her data dir (her keys are hers to misuse).
    pub mallory_dir: PathBuf,
    /// The malicious relay.
    pub rogue: Rogue,
    /// The card of a user whose home is the rogue relay, once it hosts one.
    pub zed: Option<ContactCard>,
    /// Presence changes honest relays told the rogue relay of (for its user's watches).
    pub rogue_heard: Arc<std::sync::Mutex<Vec<PresenceReport>>>,
    /// Device-list lookups the rogue relay answered (with a forged list).
    pub rogue_lists_asked: Arc<std::sync::atomic::AtomicUsize>,
    work: PathBuf,
    probes: AtomicUsize,
}

impl World {
    /// Relay index user `index` is homed on.
    pub fn home_of(&self, index: usize) -> usize {
        index % self.relays.len()
    }

    /// Alice.
    pub fn alice(&self) -> &Client {
        &self.honest[0]
    }

    /// Bob.
    pub fn bob(&self) -> &Client {
        &self.honest[1]
    }

    /// Mallory's keys, from her key file.
    pub fn mallory_keys(&self) -> anyhow::Result<Identity> {
        Ok(Identity::load(&self.mallory_dir.join(KEY_FILE), None)?)
    }

    /// An honest user's keys, from their key file (for observing as that device).
    pub fn honest_keys(&self, index: usize) -> anyhow::Result<Identity> {
        Ok(Identity::load(
            &self.honest_dirs[index].join(KEY_FILE),
            None,
        )?)
    }

    /// A fresh honest user homed on relay `relay`, outside the chat, for an attack to observe
    /// through; `label` names its data dir.
    pub async fn probe_user(&self, label: &str, relay: usize) -> anyhow::Result<Client> {
        let number = self.probes.fetch_add(1, Ordering::Relaxed);
        let dir = self.work.join("probes").join(format!("{number}-{label}"));
        let client = Client::init(&dir, None)?;
        tokio::time::timeout(
            Duration::from_secs(30),
            client.register(self.relays[relay].addr.clone(), None),
        )
        .await
        .context("registering a probe user timed out")??;
        Ok(client)
    }

    /// Makes `known` a contact of `client` under `as_name`.
    pub fn introduce(&self, client: &Client, as_name: &str, known: &Client) -> anyhow::Result<()> {
        client.add_contact(as_name, &known.card(None)?)?;
        Ok(())
    }
}

/// Starts everything but the chat: relays, honest users, the group with Mallory removed,
/// and the rogue relay.
pub async fn build(
    work: &Path,
    relays: usize,
    users: usize,
    tweak: impl Fn(&mut tidings_relay::RelayConfig),
) -> anyhow::Result<World> {
    let cluster = Cluster::start_with(work, relays, tweak).await?;
    let views: Vec<RelayView> = cluster
        .relays
        .iter()
        .map(|relay| {
            Ok(RelayView {
                addr: relay.addr.clone(),
                peer: relay.peer_id()?,
                metrics: relay.metrics,
                data_dir: relay.data_dir().to_path_buf(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let users_dir = work.join("users");
    let honest = users::register_all(&users_dir, users, &cluster).await?;
    users::introduce_all(&honest)?;
    let honest_dirs = (0..users)
        .map(|index| users_dir.join(name(index)))
        .collect();
    let mallory_dir = work.join("mallory");
    let mallory = Client::init(&mallory_dir, None)?;
    mallory.register(views[0].addr.clone(), None).await?;
    honest[0].add_contact("mallory", &mallory.card(None)?)?;

    let group = form_group(&honest, &mallory).await?;
    let rogue = Rogue::start(
        &views
            .iter()
            .map(|view| view.addr.clone())
            .collect::<Vec<_>>(),
    )
    .await?;
    Ok(World {
        cluster: Mutex::new(cluster),
        relays: views,
        honest,
        honest_dirs,
        group,
        mallory,
        mallory_dir,
        rogue,
        zed: None,
        rogue_heard: Arc::default(),
        rogue_lists_asked: Arc::default(),
        work: work.to_path_buf(),
        probes: AtomicUsize::new(0),
    })
}

/// Alice makes the group with every honest user and Mallory, then removes Mallory; returns
/// once every member (and Mallory) holds version 2.
async fn form_group(honest: &[Client], mallory: &Client) -> anyhow::Result<GroupId> {
    let mut names: Vec<String> = (1..honest.len()).map(name).collect();
    names.push("mallory".into());
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut alice = users::connect(&honest[0]).await;
    let group = alice.create_group(GROUP, &names).await?;
    for member in honest[1..].iter().chain([mallory]) {
        users::wait_for_group_version(member, group, 1, SETUP_PATIENCE).await?;
    }
    alice.remove_from_group(group, &["mallory"]).await?;
    for member in honest[1..].iter().chain([mallory]) {
        users::wait_for_group_version(member, group, 2, SETUP_PATIENCE).await?;
    }
    alice.close().await;
    Ok(group)
}

/// The honest chat: per user, what to send and when, spread evenly over `span`; a fifth of
/// the messages go to the group. Texts are `<label>#<counter>` with a counter per sender and
/// conversation.
pub fn plan_chat(users: usize, messages: usize, span: Duration, seed: u64) -> Vec<Vec<Planned>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut plans = vec![Vec::new(); users];
    let mut counters: HashMap<String, u64> = HashMap::new();
    for index in 0..messages {
        let sender = rng.random_range(0..users);
        let (target, label) = if rng.random_bool(0.2) {
            (GROUP.to_string(), format!("{GROUP}:{sender}"))
        } else {
            let mut recipient = rng.random_range(0..users - 1);
            if recipient >= sender {
                recipient += 1;
            }
            (name(recipient), format!("{sender}>{recipient}"))
        };
        let counter = counters.entry(label.clone()).or_default();
        *counter += 1;
        plans[sender].push(Planned {
            at: span.mul_f64(index as f64 / messages.max(1) as f64),
            target,
            text: format!("{label}#{counter}"),
        });
    }
    plans
}

/// Waits (at most `patience`) until `found` says yes, polling; whether it did.
pub async fn eventually(
    patience: Duration,
    mut found: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if found()? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The incoming message `id` in `client`'s store, if it was stored readable (not as an
/// envelope that could not be opened).
pub fn readable(client: &Client, id: &EnvelopeId) -> anyhow::Result<Option<MessageRecord>> {
    Ok(client
        .store()
        .message(id)?
        .filter(|record| !matches!(record.status, tidings_client::MessageStatus::Failed(_))))
}
