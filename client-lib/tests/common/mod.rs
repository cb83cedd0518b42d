//! Shared test helpers: real relays on loopback in temp dirs, and clients next to them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, time::Duration};

use libp2p::Multiaddr;
use tempfile::TempDir;
use tidings_client::{Client, Event, Session};
use tidings_relay::{RelayConfig, RelayOptions, RunningRelay, store::fault::FaultSwitch};

/// A relay's data dir that outlives restarts of the relay.
pub struct RelayDir {
    pub dir: TempDir,
    pub config: RelayConfig,
}

impl RelayDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = RelayConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..RelayConfig::default()
        };
        tidings_relay::init(dir.path(), &config).unwrap();
        Self { dir, config }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn start(&self) -> RunningRelay {
        self.start_with(None).await
    }

    pub async fn start_with(&self, fault: Option<FaultSwitch>) -> RunningRelay {
        tidings_relay::start(RelayOptions {
            data_dir: self.path(),
            config: self.config.clone(),
            fault,
        })
        .await
        .unwrap()
    }

    /// Restarts on the same port so clients find it where they registered.
    pub async fn restart(&mut self, relay: RunningRelay) -> RunningRelay {
        let address = relay.listen_addrs()[0].clone();
        relay.shutdown().await;
        self.config.listen = vec![address.to_string()];
        self.start().await
    }
}

pub fn dial_addr(relay: &RunningRelay) -> Multiaddr {
    relay.tcp_dial_addr().unwrap()
}

/// A registered client in its own temp dir.
pub struct TestUser {
    pub dir: TempDir,
    pub client: Client,
}

impl TestUser {
    pub async fn register(relay: &RunningRelay) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::init(dir.path(), None).unwrap();
        client.register(dial_addr(relay), None).await.unwrap();
        Self { dir, client }
    }

    pub fn befriend(&self, name: &str, other: &TestUser) {
        let card = other.client.card(None).unwrap();
        self.client.add_contact(name, &card).unwrap();
    }

    pub async fn connect(&self) -> Session {
        self.client.connect().await.unwrap()
    }
}

/// Waits for events until `done` says stop, failing after a deadline.
pub async fn wait_for(session: &mut Session, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, session.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting; events so far: {seen:#?}"))
            .unwrap();
        let stop = done(&event);
        seen.push(event);
        if stop {
            return seen;
        }
    }
}

/// A relay and two registered users who have each other as contacts ("alice", "bob").
pub struct Pair {
    pub relay_dir: RelayDir,
    pub relay: RunningRelay,
    pub alice: TestUser,
    pub bob: TestUser,
}

pub async fn two_friends() -> Pair {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    Pair {
        relay_dir,
        relay,
        alice,
        bob,
    }
}

/// The texts of the message events, in order.
pub fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message(message) => Some(message.text.clone()),
            _ => None,
        })
        .collect()
}
