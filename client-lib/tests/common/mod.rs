//! Shared test helpers: real relays on loopback in temp dirs, and clients next to them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use libp2p::Multiaddr;
use tempfile::TempDir;
use tidings_client::{Client, DeviceLink, Event, Session};
use tidings_protocol::LinkCode;

/// How long linking waits for the approval a test gives itself.
pub const LINK_WAIT: Duration = Duration::from_secs(30);
pub mod cli;
pub mod media;
pub mod store_device;

use tidings_relay::{
    RelayConfig, RunningRelay,
    store::fault::FaultSwitch,
    testing::{self, Network},
};

/// Makes `store` hold `identity`'s account's device list naming its one device, as fetching
/// it would (tests that hand envelopes to a store directly).
pub fn knows(store: &tidings_client::store::ClientStore, identity: &tidings_keys::Identity) {
    use tidings_protocol::{DeviceEntry, DeviceList, now_ms};
    let list = DeviceList::new(
        identity.user_id(),
        1,
        vec![DeviceEntry {
            device: identity.device_id(),
            name: "phone".into(),
            added_at_ms: now_ms(),
        }],
    )
    .unwrap();
    let signed = identity.sign_device_list(list).unwrap();
    store
        .accept_device_list(&identity.user_id(), signed)
        .unwrap()
        .unwrap();
}

/// A relay's data dir that outlives restarts of the relay (the shared harness's
/// [`testing::RelayDir`], whose fields and methods it lends, with panicking shortcuts).
pub struct RelayDir(testing::RelayDir);

impl std::ops::Deref for RelayDir {
    type Target = testing::RelayDir;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for RelayDir {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl RelayDir {
    pub fn new() -> Self {
        Self(testing::RelayDir::temp(|_| {}).unwrap())
    }

    /// A relay with its config changed by `tweak`.
    pub fn with(tweak: impl FnOnce(&mut RelayConfig)) -> Self {
        Self(testing::RelayDir::temp(tweak).unwrap())
    }

    pub async fn start(&self) -> RunningRelay {
        self.start_with(None).await
    }

    pub async fn start_with(&self, fault: Option<FaultSwitch>) -> RunningRelay {
        self.0.start(fault).await.unwrap()
    }

    /// Restarts on the same port so clients find it where they registered.
    pub async fn restart(&mut self, relay: RunningRelay) -> RunningRelay {
        self.0.stop(relay).await;
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

    /// Another device of this user's account, registered at `relay` (its home) with a device
    /// list naming both.
    pub async fn another_device(&self, relay: &RunningRelay) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let client = self.client.init_another_device(dir.path()).unwrap();
        client.register(dial_addr(relay), None).await.unwrap();
        Self { dir, client }
    }

    /// A new device linked to this user's account as a person does it (a link code shown by
    /// the new device, approved here): it holds no account key.
    pub async fn link_device(&self, relay: &RunningRelay, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let new = DeviceLink::start(dial_addr(relay)).await.unwrap();
        let code: LinkCode = new.code().to_string().parse().unwrap();
        let path = dir.path().to_path_buf();
        let waiting = tokio::spawn(async move { new.finish(&path, None, LINK_WAIT).await });
        let approved = self.client.approve_link(&code, Some(name)).await.unwrap();
        assert_eq!(approved.device, code.device);
        let (client, package) = waiting.await.unwrap().unwrap();
        assert_eq!(package.name, name);
        assert_eq!(package.approver, self.client.address());
        assert_eq!(package.list_version, approved.list_version);
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

/// A relay (and its data dir, kept while it runs) and two registered users who have each
/// other as contacts ("alice", "bob").
pub async fn two_friends() -> (RelayDir, RunningRelay, TestUser, TestUser) {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    (relay_dir, relay, alice, bob)
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

/// Several relays on loopback forming one DHT (the shared harness's [`Network`], with
/// panicking shortcuts): relay 0 starts the network, the others bootstrap from it. Relays can
/// be stopped and restarted on their port.
pub struct Net(Network);

impl Net {
    pub async fn start(count: usize) -> Net {
        Self::start_with(count, |_| {}).await
    }

    pub async fn start_with(count: usize, tweak: impl Fn(&mut RelayConfig)) -> Net {
        Net(Network::start(count, tweak).await.unwrap())
    }

    /// Waits until every running relay knows `peers` others.
    pub async fn wait_for_dht(&self, peers: usize) {
        self.0
            .wait_for_dht(peers, Duration::from_secs(20))
            .await
            .unwrap();
    }

    pub fn relay(&self, index: usize) -> &RunningRelay {
        self.0.relay(index).expect("relay is stopped")
    }

    /// Relay `index`'s data dir.
    pub fn dir(&self, index: usize) -> &std::path::Path {
        self.0.dir(index).expect("no such relay").path()
    }

    pub async fn stop(&mut self, index: usize) {
        self.0.stop(index).await.expect("relay already stopped");
    }

    pub async fn restart(&mut self, index: usize) {
        assert!(self.0.relay(index).is_none(), "stop it first");
        self.0.restart(index).await.unwrap();
    }

    pub async fn shutdown(self) {
        self.0.shutdown().await;
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
