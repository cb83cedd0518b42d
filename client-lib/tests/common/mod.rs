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

    /// Connects and subscribes: the user is online until the session ends.
    pub async fn online(&self) -> Session {
        let mut session = self.connect().await;
        session.subscribe().await.unwrap();
        session
    }

    /// Connects, takes what is waiting (or arrives) within `window`, and disconnects.
    pub async fn sync(&self, window: Duration) -> Vec<Event> {
        self.connect().await.sync(window).await.unwrap()
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

/// Every event that arrives within `window`.
pub async fn events_for(session: &mut Session, window: Duration) -> Vec<Event> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(window, async {
        while let Ok(event) = session.next_event().await {
            seen.push(event);
        }
    })
    .await;
    seen
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

/// Several relays on loopback forming one DHT: relay 0 starts the network, the others
/// bootstrap from it. Relays can be stopped and restarted on their port.
pub struct Net {
    pub dirs: Vec<RelayDir>,
    pub relays: Vec<Option<RunningRelay>>,
}

impl Net {
    pub async fn start(count: usize) -> Net {
        Self::start_with(count, |_| {}).await
    }

    pub async fn start_with(count: usize, tweak: impl Fn(&mut RelayConfig)) -> Net {
        let mut dirs = Vec::new();
        let mut relays = Vec::new();
        let mut bootstrap: Vec<String> = Vec::new();
        for _ in 0..count {
            let dir = tempfile::tempdir().unwrap();
            let mut config = RelayConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
                bootstrap: bootstrap.clone(),
                ..RelayConfig::default()
            };
            tweak(&mut config);
            tidings_relay::init(dir.path(), &config).unwrap();
            let relay_dir = RelayDir { dir, config };
            let relay = relay_dir.start().await;
            if bootstrap.is_empty() {
                bootstrap.push(dial_addr(&relay).to_string());
            }
            dirs.push(relay_dir);
            relays.push(Some(relay));
        }
        let net = Net { dirs, relays };
        net.wait_for_dht(count - 1).await;
        net
    }

    /// Waits until every running relay knows `peers` others.
    pub async fn wait_for_dht(&self, peers: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for relay in self.relays.iter().flatten() {
            while relay.routing_peers().await < peers {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the DHT did not form"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    pub fn relay(&self, index: usize) -> &RunningRelay {
        self.relays[index].as_ref().expect("relay is stopped")
    }

    pub async fn stop(&mut self, index: usize) {
        let relay = self.relays[index].take().expect("relay already stopped");
        let address = relay.listen_addrs()[0].clone();
        relay.shutdown().await;
        self.dirs[index].config.listen = vec![address.to_string()];
    }

    pub async fn restart(&mut self, index: usize) {
        assert!(self.relays[index].is_none(), "stop it first");
        self.relays[index] = Some(self.dirs[index].start().await);
    }

    pub async fn shutdown(mut self) {
        for relay in self.relays.iter_mut().filter_map(Option::take) {
            relay.shutdown().await;
        }
    }
}

/// Waits until `relay` finds `user`'s home record naming `home`.
pub async fn wait_for_home(relay: &RunningRelay, user: &TestUser, home: &RunningRelay) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let want = home.peer_id().to_string();
    loop {
        if let Some(record) = relay.lookup_home(user.client.user_id()).await
            && record.relay == want
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "home record did not propagate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
