//! Relays as real child processes: start, kill -9, stop gracefully, restart on the same port.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use tidings_relay::testing;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
};

/// How long a relay process may take to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `tidings-relay` running as a child process (this executable, re-run as `relay run`).
pub struct RelayProcess {
    child: Child,
    /// Where fault commands go (`block <peer>` / `unblock <peer>`).
    faults: ChildStdin,
    /// Relays this one is cut off from, applied again after a restart.
    blocked: BTreeSet<PeerId>,
    data_dir: PathBuf,
    /// Listen addresses besides the first (fixed ports: WebSocket, QUIC), given again on a
    /// restart.
    more_listen: Vec<String>,
    /// Where clients dial it (with `/p2p/<peer id>`).
    pub addr: Multiaddr,
    /// Where it serves `/metrics`, if it does.
    pub metrics: Option<SocketAddr>,
}

impl RelayProcess {
    /// Starts the relay in `data_dir` (made by `tidings_relay::init`) listening on `listen`.
    pub async fn start(data_dir: &Path, listen: &str) -> anyhow::Result<RelayProcess> {
        Self::start_on(data_dir, listen, &[]).await
    }

    /// As [`RelayProcess::start`], listening also on `more_listen` (with fixed ports, kept
    /// across [`RelayProcess::restart`]). `listen` is the TCP address clients dial.
    pub async fn start_on(
        data_dir: &Path,
        listen: &str,
        more_listen: &[String],
    ) -> anyhow::Result<RelayProcess> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let log_path = data_dir.join("relay.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut child = Command::new(exe)
            .args([
                "relay",
                "run",
                "--print-addr",
                "--faults-from-stdin",
                "--listen",
                listen,
                "--data-dir",
            ])
            .arg(data_dir)
            .args(more_listen.iter().flat_map(|address| ["--listen", address]))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting a relay process")?;
        let faults = child.stdin.take().context("relay stdin")?;
        let stdout = child.stdout.take().context("relay stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .with_context(|| {
                format!(
                    "relay did not start within {START_TIMEOUT:?}; see {}",
                    log_path.display()
                )
            })?
            .context("reading the relay's address")?;
        let Some(line) = line else {
            bail!("relay exited before listening; see {}", log_path.display());
        };
        let addr: Multiaddr = line
            .trim()
            .parse()
            .with_context(|| format!("relay printed {line:?}, not an address"))?;
        // A relay serving metrics prints their URL next.
        let metrics =
            match tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await {
                Ok(Ok(Some(line))) => testing::metrics_url_address(&line),
                _ => None,
            };
        Ok(RelayProcess {
            child,
            faults,
            blocked: BTreeSet::new(),
            data_dir: data_dir.to_path_buf(),
            more_listen: more_listen.to_vec(),
            addr,
            metrics,
        })
    }

    /// Reads a counter from the relay's `/metrics` (summing its series whose labels contain
    /// every one of `labels`); 0 if it serves none.
    pub async fn counter(&self, name: &str, labels: &[&str]) -> anyhow::Result<f64> {
        let Some(address) = self.metrics else {
            return Ok(0.0);
        };
        Ok(testing::scrape(address)
            .await?
            .sum(name, labels)
            .unwrap_or(0.0))
    }

    /// The relay's peer id (from its dial address).
    pub fn peer_id(&self) -> anyhow::Result<PeerId> {
        match self.addr.iter().last() {
            Some(Protocol::P2p(peer)) => Ok(peer),
            _ => bail!("relay address {} has no peer id", self.addr),
        }
    }

    /// Cuts the relay's links to `peer` (both ways, as far as this relay is concerned), or
    /// restores them. Kept across [`RelayProcess::restart`].
    pub async fn set_blocked(&mut self, peer: PeerId, blocked: bool) -> anyhow::Result<()> {
        if blocked {
            self.blocked.insert(peer);
        } else {
            self.blocked.remove(&peer);
        }
        let verb = if blocked { "block" } else { "unblock" };
        self.faults
            .write_all(format!("{verb} {peer}\n").as_bytes())
            .await
            .context("sending a fault command to the relay")?;
        self.faults.flush().await?;
        Ok(())
    }

    /// Its data directory (configuration, key, `relay.redb`, log).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// The listen address without `/p2p/...`, to restart on the same port.
    pub fn listen_addr(&self) -> String {
        self.addr
            .iter()
            .filter(|protocol| !matches!(protocol, Protocol::P2p(_)))
            .collect::<Multiaddr>()
            .to_string()
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing the relay")?;
        Ok(())
    }

    /// Asks the process to stop (SIGTERM) and waits for a clean exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
                .context("signalling the relay")?;
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("relay did not stop within 30s")??;
        if !status.success() {
            bail!("relay exited with {status}");
        }
        Ok(())
    }

    /// Starts the relay again on the same address and data dir (after it stopped or was
    /// killed).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let listen = self.listen_addr();
        let blocked = std::mem::take(&mut self.blocked);
        *self = RelayProcess::start_on(&self.data_dir, &listen, &self.more_listen).await?;
        for peer in blocked {
            self.set_blocked(peer, true).await?;
        }
        Ok(())
    }
}
