//! The backup commands over relay processes: `tidings-relay backup` asks the running relay
//! through its admin socket while a load runs, `restore` recreates the data dir, a relay
//! process started on it serves every message acknowledged before the backup started, and
//! `compact` refuses the running one.

use std::{
    collections::HashSet,
    io::BufRead,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use tidings_protocol::EnvelopeId;
use tidings_relay::testing::RelayDir;

use crate::{
    backup::{Load, drained_ids, send_acked},
    common::RawDevice,
};

const BINARY: &str = env!("CARGO_BIN_EXE_tidings-relay");

/// A `tidings-relay run` process; stopped with SIGTERM (a graceful stop) when dropped.
struct RelayProcess {
    child: Child,
    address: libp2p::Multiaddr,
}

impl RelayProcess {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(BINARY)
            .args(["run", "--print-addr", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines.next().unwrap().unwrap().trim().parse().unwrap();
        Self { child, address }
    }

    /// SIGTERM, and the relay must be gone within [`STOP_TIMEOUT`].
    fn stop(mut self) {
        assert!(
            self.terminate(),
            "the relay did not stop within {STOP_TIMEOUT:?} of SIGTERM"
        );
    }

    /// SIGTERM, then SIGKILL if it is still running after [`STOP_TIMEOUT`]; whether it
    /// stopped on SIGTERM.
    fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

/// How long a relay process may take to stop gracefully.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// Runs `tidings-relay ARGS` to its end (off the runtime).
async fn cli(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BINARY).args(args).output().unwrap())
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_backs_up_a_running_relay_process_and_restores_it() {
    let source = RelayDir::temp(|config| {
        config.limits.user_envelopes_per_sec = 1_000_000;
        config.limits.user_envelopes_burst = 1_000_000;
    })
    .unwrap();
    let relay = RelayProcess::start(source.path());
    let mut alice = RawDevice::registered(&relay.address).await;
    let carol = RawDevice::registered(&relay.address).await;
    let bob = RawDevice::registered(&relay.address).await;
    let (bob_account, bob_device, bob_address) =
        (bob.account.clone(), bob.device.clone(), bob.address());
    drop(bob);

    let acked_before: HashSet<EnvelopeId> = send_acked(&mut alice, bob_address, 1_000)
        .await
        .into_iter()
        .collect();
    let load = Load::start(carol, bob_address);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let target = tempfile::tempdir().unwrap();
    let backup_dir = target.path().join("backup");
    let made = cli(vec![
        "backup".into(),
        "--data-dir".into(),
        path(source.path()),
        "--to".into(),
        path(&backup_dir),
    ])
    .await;
    let (load_acked, requests) = load.finish().await;
    assert!(made.status.success(), "{}", text(&made));
    assert!(text(&made).contains("backup of"), "{}", text(&made));
    assert!(
        requests.len() > 1,
        "the load ran while the backup was written"
    );
    relay.stop();

    let restored_dir = target.path().join("restored");
    let restored = cli(vec![
        "restore".into(),
        "--from".into(),
        path(&backup_dir),
        "--data-dir".into(),
        path(&restored_dir),
    ])
    .await;
    assert!(restored.status.success(), "{}", text(&restored));

    let relay = RelayProcess::start(&restored_dir);
    // A running relay's files are not compacted under it.
    let compact = cli(vec![
        "compact".into(),
        "--data-dir".into(),
        path(&restored_dir),
    ])
    .await;
    assert!(!compact.status.success());
    assert!(
        text(&compact).contains("stop it first"),
        "{}",
        text(&compact)
    );

    let mut bob = RawDevice::connect_as(&relay.address, bob_account, bob_device).await;
    let got = drained_ids(&mut bob).await;
    let lost = acked_before.difference(&got).count();
    assert_eq!(
        lost, 0,
        "{lost} envelopes acked before the backup are missing"
    );
    let load_acked: HashSet<EnvelopeId> = load_acked.into_iter().collect();
    assert!(
        got.iter()
            .all(|id| acked_before.contains(id) || load_acked.contains(id))
    );
    relay.stop();
}

#[tokio::test]
async fn the_cli_backs_up_a_stopped_relay_from_its_files() {
    let source = RelayDir::temp(|_| {}).unwrap();
    let target = tempfile::tempdir().unwrap();
    let made = cli(vec![
        "backup".into(),
        "--data-dir".into(),
        path(source.path()),
        "--to".into(),
        path(&target.path().join("backup")),
    ])
    .await;
    assert!(made.status.success(), "{}", text(&made));
    // A second backup into the same directory is refused.
    let again = cli(vec![
        "backup".into(),
        "--data-dir".into(),
        path(source.path()),
        "--to".into(),
        path(&target.path().join("backup")),
    ])
    .await;
    assert!(!again.status.success());
    assert!(text(&again).contains("is not empty"), "{}", text(&again));
}

#[test]
fn the_systemd_units_run_commands_this_build_knows() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    let unit = std::fs::read_to_string(dist.join("tidings-relay.service")).unwrap();
    for setting in [
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "LimitNOFILE=",
        "User=tidings",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(setting), "the unit lacks {setting}");
    }
    let backup = std::fs::read_to_string(dist.join("tidings-relay-backup.service")).unwrap();
    for (unit_text, command) in [(&unit, "run"), (&backup, "backup")] {
        let line = unit_text
            .lines()
            .find(|line| line.contains(&format!("tidings-relay {command} ")))
            .unwrap_or_else(|| panic!("no `tidings-relay {command}` line"));
        // The shell's `$(date ...)` part of a path is left out; the rest is passed as is.
        let args = line
            .split_once(&format!("tidings-relay {command} "))
            .unwrap()
            .1
            .split("$(")
            .next()
            .unwrap()
            .split_whitespace()
            .map(|arg| arg.trim_end_matches('\''));
        let mut full = vec![command];
        full.extend(args);
        full.push("--help");
        let output = Command::new(BINARY).args(&full).output().unwrap();
        assert!(
            output.status.success(),
            "tidings-relay {full:?}: {}",
            text(&output)
        );
    }
}
