//! A relay running as a child process of the test, and the `tidings-relay` CLI run against
//! its data dir.

use std::{path::Path, process::Stdio, time::Duration};

use libp2p::Multiaddr;
use tidings_relay::{RelayConfig, testing::RelayDir};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const BINARY: &str = env!("CARGO_BIN_EXE_tidings-relay");

/// A `tidings-relay run` process and its data dir.
pub struct RelayProcess {
    pub dir: RelayDir,
    pub addr: Multiaddr,
    child: Child,
    /// The rest of its stdout, held open and unread (nothing more comes after the address).
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl RelayProcess {
    /// Initializes a fresh loopback relay (its config changed by `tweak`) and runs it.
    pub async fn start(tweak: impl FnOnce(&mut RelayConfig)) -> Self {
        Self::run(RelayDir::temp(tweak).unwrap()).await
    }

    /// Runs the relay initialized in `dir`.
    pub async fn run(dir: RelayDir) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("relay.log"))
            .unwrap();
        let mut child = Command::new(BINARY)
            .args(["run", "--print-addr", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the relay did not print its address")
            .unwrap()
            .expect("the relay exited before listening");
        Self {
            dir,
            addr: line.trim().parse().unwrap(),
            child,
            _stdout: lines,
        }
    }

    /// Stops the relay with SIGTERM and waits for it; the data dir stays.
    pub async fn stop(mut self) -> RelayDir {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the relay did not stop")
            .unwrap();
        assert!(exited.success(), "the relay exited with {exited}");
        self.dir
    }

    /// Kills the relay with SIGKILL (a crash): the data dir stays, with what it left.
    pub async fn crash(mut self) -> RelayDir {
        self.child.kill().await.unwrap();
        self.dir
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `tidings-relay ARGS --data-dir DIR`: success, stdout, stderr.
    pub async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        cli(self.path(), args).await
    }

    /// Runs a CLI command that must succeed and print JSON; the JSON.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let (ok, out, err) = self.cli(args).await;
        assert!(ok, "tidings-relay {args:?} failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|error| panic!("{error}: {out}"))
    }

    /// Runs a CLI command that must succeed.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(args).await;
        assert!(ok, "tidings-relay {args:?} failed: {err}");
        out
    }
}

/// Runs `tidings-relay ARGS --data-dir DIR`: success, stdout, stderr.
pub async fn cli(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_BACKTRACE", "0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .unwrap_or_else(|_| panic!("tidings-relay {args:?} did not finish in 60 s"))
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
