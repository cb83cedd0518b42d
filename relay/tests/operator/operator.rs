//! What an operator sees when starting relays: a taken port is an error, the relay names
//! itself in identify, and logs written to a pipe are plain text.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::common::{TestRelay, start_tweaked, tcp_swarm};
use futures::StreamExt;
use libp2p::{identify, identity::Keypair, multiaddr::Protocol, swarm::SwarmEvent};
use tidings_relay::{
    RelayError,
    testing::{HarnessError, RelayDir},
};

#[tokio::test]
async fn a_second_relay_on_a_taken_port_refuses_to_start() {
    let first = start_tweaked(|_| {}, None).await;
    let port = first
        .relay
        .listen_addrs()
        .iter()
        .flat_map(|address| address.iter())
        .find_map(|part| match part {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();

    let second_dir =
        RelayDir::temp(|config| config.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")])
            .unwrap();
    match second_dir.start(None).await {
        Err(HarnessError::Relay(RelayError::AddressTaken(taken))) => {
            assert_eq!(taken.source.kind(), std::io::ErrorKind::AddrInUse);
            assert!(taken.to_string().contains(&port.to_string()));
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(relay) => {
            relay.shutdown().await;
            panic!("a second relay started on a port the first one holds");
        }
    }
    first.relay.shutdown().await;
}

#[tokio::test]
async fn identify_names_the_relay_and_its_version() {
    let TestRelay { dir: _dir, relay } = start_tweaked(|_| {}, None).await;
    let mut swarm = tcp_swarm(Keypair::generate_ed25519(), |key| {
        identify::Behaviour::new(identify::Config::new("/ipfs/id/1.0.0".into(), key.public()))
    });
    swarm.dial(relay.tcp_dial_addr().unwrap()).unwrap();
    let agent = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let SwarmEvent::Behaviour(identify::Event::Received { info, .. }) =
                swarm.select_next_some().await
            {
                break info.agent_version;
            }
        }
    })
    .await
    .expect("no identify answer from the relay");
    assert_eq!(
        agent,
        format!("tidings-relay/{}", env!("CARGO_PKG_VERSION"))
    );
    relay.shutdown().await;
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_tidings-relay");
    let init = Command::new(binary)
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut relay = Command::new(binary)
        .args(["run", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().take(200) {
        let line = line.unwrap();
        let started = line.contains("relay started");
        seen.push(line);
        if started {
            break;
        }
    }
    relay.kill().unwrap();
    relay.wait().unwrap();
    assert!(
        seen.iter().any(|line| line.contains("relay started")),
        "no start line in {seen:?}"
    );
    for line in &seen {
        assert!(
            !line.contains('\u{1b}'),
            "colour code in a piped log line: {line:?}"
        );
    }
}
