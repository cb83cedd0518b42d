//! Relays on loopback in their own data dirs: one at a time, or several forming one DHT (the
//! first starts it, the others bootstrap from it), stopped and restarted on their port.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tempfile::TempDir;

use super::HarnessError;
use crate::{RelayConfig, RelayOptions, RunningRelay, store::fault::FaultSwitch};

/// How long [`Network::start`] waits for every routing table to hold every other relay.
const DHT_FORM_TIMEOUT: Duration = Duration::from_secs(20);
/// How often routing tables are looked at while the DHT forms.
const DHT_POLL: Duration = Duration::from_millis(50);

/// The default configuration, listening on a fresh loopback TCP port.
pub fn loopback_config() -> RelayConfig {
    RelayConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        ..RelayConfig::default()
    }
}

/// A relay's initialized data dir and the configuration it starts with; it outlives restarts
/// of the relay (a temp dir is deleted when this drops).
pub struct RelayDir {
    /// Held so a temp dir is deleted when this drops.
    _temp: Option<TempDir>,
    path: PathBuf,
    /// What [`RelayDir::start`] runs with (changes take effect at the next start).
    pub config: RelayConfig,
}

impl RelayDir {
    /// A fresh temp dir initialized with [`loopback_config`] changed by `tweak`.
    pub fn temp(tweak: impl FnOnce(&mut RelayConfig)) -> Result<Self, HarnessError> {
        let mut config = loopback_config();
        tweak(&mut config);
        let temp = tempfile::tempdir().map_err(HarnessError::TempDir)?;
        let path = temp.path().to_path_buf();
        crate::init(&path, &config)?;
        Ok(Self {
            _temp: Some(temp),
            path,
            config,
        })
    }

    /// Initializes `path` (made if needed) with `config`; the dir stays after this drops.
    pub fn init(path: PathBuf, config: RelayConfig) -> Result<Self, HarnessError> {
        crate::init(&path, &config)?;
        Ok(Self::existing(path, config))
    }

    /// A dir initialized before (e.g. by an earlier relay of a test), started with `config`.
    pub fn existing(path: PathBuf, config: RelayConfig) -> Self {
        Self {
            _temp: None,
            path,
            config,
        }
    }

    /// The data dir.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the relay, over a store that fails while `fault` is on (if given).
    pub async fn start(&self, fault: Option<FaultSwitch>) -> Result<RunningRelay, HarnessError> {
        Ok(crate::start(RelayOptions {
            data_dir: self.path.clone(),
            config: self.config.clone(),
            fault,
            clock: Default::default(),
            backup_before_upgrade: true,
        })
        .await?)
    }

    /// Stops `relay` gracefully and keeps its port: the next [`RelayDir::start`] listens
    /// where its users and the other relays found it.
    pub async fn stop(&mut self, relay: RunningRelay) {
        let listening = relay.listen_addrs();
        relay.shutdown().await;
        if let Some(address) = listening.first() {
            self.config.listen = vec![address.to_string()];
        }
    }
}

/// Relays forming one DHT: relay 0 starts the network, the others bootstrap from it.
pub struct Network {
    dirs: Vec<RelayDir>,
    relays: Vec<Option<RunningRelay>>,
}

impl Network {
    /// `count` relays in temp dirs, each configuration changed by `tweak` (after its name,
    /// loopback listen address and bootstrap are set); returns once every relay's routing
    /// table holds every other relay.
    pub async fn start(
        count: usize,
        tweak: impl Fn(&mut RelayConfig),
    ) -> Result<Network, HarnessError> {
        let network = Self::launch(count, tweak, |_, config| {
            RelayDir::temp(|temp| *temp = config)
        })
        .await?;
        let formed = network
            .wait_for_dht(count.saturating_sub(1), DHT_FORM_TIMEOUT)
            .await;
        match formed {
            Ok(()) => Ok(network),
            Err(error) => {
                network.shutdown().await;
                Err(error)
            }
        }
    }

    /// `count` relays in `work/relay1`, `work/relay2`, ... (named `relay-1`, ...), each
    /// configuration changed by `tweak`; returns as soon as they run (see
    /// [`Network::wait_for_dht`]).
    pub async fn start_in(
        work: &Path,
        count: usize,
        tweak: impl Fn(&mut RelayConfig),
    ) -> Result<Network, HarnessError> {
        Self::launch(count, tweak, |index, config| {
            RelayDir::init(work.join(format!("relay{}", index + 1)), config)
        })
        .await
    }

    async fn launch(
        count: usize,
        tweak: impl Fn(&mut RelayConfig),
        make_dir: impl Fn(usize, RelayConfig) -> Result<RelayDir, HarnessError>,
    ) -> Result<Network, HarnessError> {
        let mut network = Network {
            dirs: Vec::with_capacity(count),
            relays: Vec::with_capacity(count),
        };
        let mut bootstrap = Vec::new();
        for index in 0..count {
            let mut config = RelayConfig {
                name: format!("relay-{}", index + 1),
                bootstrap: bootstrap.clone(),
                ..loopback_config()
            };
            tweak(&mut config);
            let started = match make_dir(index, config) {
                Ok(dir) => dir.start(None).await.map(|relay| (dir, relay)),
                Err(error) => Err(error),
            };
            let (dir, relay) = match started {
                Ok(started) => started,
                Err(error) => {
                    network.shutdown().await;
                    return Err(error);
                }
            };
            if bootstrap.is_empty() {
                let Some(address) = relay.tcp_dial_addr() else {
                    relay.shutdown().await;
                    return Err(HarnessError::NoTcpAddress);
                };
                bootstrap.push(address.to_string());
            }
            network.dirs.push(dir);
            network.relays.push(Some(relay));
        }
        Ok(network)
    }

    /// Waits until every running relay's routing table holds at least `peers` others.
    pub async fn wait_for_dht(&self, peers: usize, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let smallest = self.smallest_routing_table().await;
            if smallest >= peers {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::DhtNotFormed {
                    smallest,
                    wanted: peers,
                });
            }
            tokio::time::sleep(DHT_POLL).await;
        }
    }

    /// The fewest peers a running relay's routing table holds (`usize::MAX` if none runs).
    pub async fn smallest_routing_table(&self) -> usize {
        let mut smallest = usize::MAX;
        for relay in self.running() {
            smallest = smallest.min(relay.routing_peers().await);
        }
        smallest
    }

    /// Relay `index`, if it runs.
    pub fn relay(&self, index: usize) -> Option<&RunningRelay> {
        self.relays.get(index).and_then(Option::as_ref)
    }

    /// The running relays, in start order.
    pub fn running(&self) -> impl Iterator<Item = &RunningRelay> {
        self.relays.iter().flatten()
    }

    /// The data dir (and configuration) of relay `index`.
    pub fn dir(&self, index: usize) -> Option<&RelayDir> {
        self.dirs.get(index)
    }

    /// Stops relay `index` gracefully, keeping its port for [`Network::restart`].
    pub async fn stop(&mut self, index: usize) -> Result<(), HarnessError> {
        let relay = self
            .relays
            .get_mut(index)
            .and_then(Option::take)
            .ok_or(HarnessError::NotRunning(index))?;
        self.dirs[index].stop(relay).await;
        Ok(())
    }

    /// Starts relay `index` again (after [`Network::stop`]) on its port and data dir.
    pub async fn restart(&mut self, index: usize) -> Result<(), HarnessError> {
        let (Some(dir), Some(slot)) = (self.dirs.get(index), self.relays.get_mut(index)) else {
            return Err(HarnessError::NotRunning(index));
        };
        if slot.is_none() {
            *slot = Some(dir.start(None).await?);
        }
        Ok(())
    }

    /// Each relay's dir and the relay, if it runs, in start order.
    pub fn into_parts(self) -> Vec<(RelayDir, Option<RunningRelay>)> {
        self.dirs.into_iter().zip(self.relays).collect()
    }

    /// Stops every running relay gracefully.
    pub async fn shutdown(self) {
        for relay in self.relays.into_iter().flatten() {
            relay.shutdown().await;
        }
    }
}
