//! A user's device as its own process (`tidings-testnet device`), so scenarios can end it
//! cleanly, kill it, or freeze it with its connection open.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use nix::{sys::signal::Signal, unistd::Pid};
use tidings_client::Client;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
    signal::unix::{SignalKind, signal},
};

/// How long a device process may take to come online.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Line a device prints just before it subscribes (when its user is about to go online),
/// with the time.
const SUBSCRIBING: &str = "subscribing";
/// Line a device prints once subscribed.
const ONLINE: &str = "online";

/// The child side: connects the client in `data_dir`, subscribes, and stays online,
/// taking deliveries, until SIGTERM, then closes its session cleanly.
pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let client = Client::open(data_dir, None)?;
    let mut session = client.connect().await?;
    say(&format!("{SUBSCRIBING} {}", unix_micros(SystemTime::now())))?;
    session.subscribe().await?;
    say(ONLINE)?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            event = session.next_event() => {
                event?;
            }
        }
    }
    session.close().await;
    Ok(())
}

fn unix_micros(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// The moment a device stamped (microseconds since the epoch, by the same system clock),
/// as an `Instant` of this process: exact however late this process reads the line.
fn stamped_instant(stamp: &str) -> Option<Instant> {
    let stamp: u128 = stamp.parse().ok()?;
    let ago = unix_micros(SystemTime::now()).checked_sub(stamp)?;
    Instant::now().checked_sub(Duration::from_micros(u64::try_from(ago).ok()?))
}

fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The parent side: a running device process.
pub struct DeviceProcess {
    child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
    /// When the device was about to subscribe (stamped by the device).
    pub subscribing_at: Instant,
}

/// How a device leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// SIGTERM: the device closes its session.
    Clean,
    /// SIGKILL: the process dies; the kernel closes its socket.
    Killed,
    /// SIGSTOP: the process freezes with its connection open and says nothing, as a
    /// device whose network vanished; only the relay's heartbeat timeout notices.
    Vanished,
}

impl DeviceProcess {
    /// Starts a device for the client in `data_dir`; returns once it is subscribed.
    pub async fn start(data_dir: &Path, log: &Path) -> anyhow::Result<DeviceProcess> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("device")
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("starting a device process")?;
        let stdout = child.stdout.take().context("device stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let started = tokio::time::timeout(START_TIMEOUT, async {
            let mut subscribing_at = None;
            while let Some(line) = lines.next_line().await? {
                match line.trim().split_once(' ') {
                    Some((SUBSCRIBING, stamp)) => subscribing_at = stamped_instant(stamp),
                    _ if line.trim() == ONLINE => return Ok(subscribing_at),
                    _ => {}
                }
            }
            bail!("device exited before it was online; see {}", log.display())
        })
        .await
        .with_context(|| format!("device not online within {START_TIMEOUT:?}"))??;
        Ok(DeviceProcess {
            child,
            _stdout: lines,
            subscribing_at: started.unwrap_or_else(Instant::now),
        })
    }

    /// Makes the device leave as `how` says; returns when the signal was sent.
    pub async fn leave(&mut self, how: Departure) -> anyhow::Result<Instant> {
        let signal = match how {
            Departure::Clean => Signal::SIGTERM,
            Departure::Killed => Signal::SIGKILL,
            Departure::Vanished => Signal::SIGSTOP,
        };
        let pid = self.child.id().context("device already exited")?;
        let at = Instant::now();
        nix::sys::signal::kill(Pid::from_raw(pid as i32), signal).context("signalling a device")?;
        if how != Departure::Vanished {
            tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .context("device did not exit within 10 s")??;
        }
        Ok(at)
    }

    /// Ends the process for good (SIGKILL works on a frozen one too) and reaps it.
    pub async fn reap(mut self) -> anyhow::Result<()> {
        if self.child.id().is_some() {
            self.child.kill().await.context("killing a device")?;
        }
        Ok(())
    }
}

/// Where a user's device log goes.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("device.log")
}
