//! The scenario's relays: processes listening on TCP, QUIC and WebSocket at fixed loopback
//! ports (so a restarted relay is found where it was) and serving the built page.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket},
    path::Path,
};

use anyhow::Context;
use tidings_relay::{RelayConfig, testing};

use crate::process::RelayProcess;

/// A relay process and where its page is served.
pub struct PageRelay {
    pub process: RelayProcess,
    /// `http://127.0.0.1:N/`.
    pub page_url: String,
}

/// A loopback TCP port free right now.
fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A loopback UDP port free right now.
fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Initializes and starts `count` relays under `work/relayN` (the first starts the DHT, the
/// others join it), each serving `page_dir`.
pub async fn start(work: &Path, count: usize, page_dir: &Path) -> anyhow::Result<Vec<PageRelay>> {
    let mut relays: Vec<PageRelay> = Vec::with_capacity(count);
    for index in 0..count {
        let dir = work.join(format!("relay{}", index + 1));
        let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()?));
        let tcp = format!("/ip4/127.0.0.1/tcp/{}", free_tcp_port()?);
        let more = vec![
            format!("/ip4/127.0.0.1/udp/{}/quic-v1", free_udp_port()?),
            format!("/ip4/127.0.0.1/tcp/{}/ws", free_tcp_port()?),
        ];
        let mut config = RelayConfig {
            name: format!("relay-{}", index + 1),
            bootstrap: relays
                .first()
                .map(|first| vec![first.process.addr.to_string()])
                .unwrap_or_default(),
            metrics_listen: Some("127.0.0.1:0".into()),
            ..testing::loopback_config()
        };
        config.web.listen = web.to_string();
        config.web.dir = page_dir.display().to_string();
        tidings_relay::init(&dir, &config)?;
        let process = RelayProcess::start_on(&dir, &tcp, &more)
            .await
            .with_context(|| format!("starting relay {}", index + 1))?;
        relays.push(PageRelay {
            process,
            page_url: format!("http://{web}/"),
        });
    }
    Ok(relays)
}
