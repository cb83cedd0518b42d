//! What an operator sees when starting relays: a taken port is an error, the relay names
//! itself in identify, and logs written to a pipe are plain text.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use futures::StreamExt;
use libp2p::{identify, identity::Keypair, multiaddr::Protocol, swarm::SwarmEvent};
use tidings_relay::{RelayConfig, RelayError, RelayOptions};

fn config_on(listen: &str) -> RelayConfig {
    RelayConfig {
        listen: vec![listen.into()],
        ..RelayConfig::default()
    }
}

#[tokio::test]
async fn a_second_relay_on_a_taken_port_refuses_to_start() {
    let first_dir = tempfile::tempdir().unwrap();
    let config = config_on("/ip4/127.0.0.1/tcp/0");
    tidings_relay::init(first_dir.path(), &config).unwrap();
    let first = tidings_relay::start(RelayOptions {
        data_dir: first_dir.path().into(),
        config,
        fault: None,
    })
    .await
    .unwrap();
    let port = first
        .listen_addrs()
        .iter()
        .flat_map(|address| address.iter())
        .find_map(|part| match part {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();

    let second_dir = tempfile::tempdir().unwrap();
    let config = config_on(&format!("/ip4/127.0.0.1/tcp/{port}"));
    tidings_relay::init(second_dir.path(), &config).unwrap();
    let second = tidings_relay::start(RelayOptions {
        data_dir: second_dir.path().into(),
        config,
        fault: None,
    })
    .await;
    match second {
        Err(RelayError::AddressTaken(taken)) => {
            assert_eq!(taken.source.kind(), std::io::ErrorKind::AddrInUse);
            assert!(taken.to_string().contains(&port.to_string()));
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(relay) => {
            relay.shutdown().await;
            panic!("a second relay started on a port the first one holds");
        }
    }
    first.shutdown().await;
}

#[tokio::test]
async fn identify_names_the_relay_and_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_on("/ip4/127.0.0.1/tcp/0");
    tidings_relay::init(dir.path(), &config).unwrap();
    let relay = tidings_relay::start(RelayOptions {
        data_dir: dir.path().into(),
        config,
        fault: None,
    })
    .await
    .unwrap();
    let mut swarm = crate::common::tcp_swarm(Keypair::generate_ed25519(), |key| {
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
