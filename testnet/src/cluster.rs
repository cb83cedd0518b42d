//! A network of relay processes on loopback: the first starts the DHT, the rest join it.

use std::{path::Path, time::Duration};

use tidings_relay::RelayConfig;

use crate::process::RelayProcess;

/// How long newly started relays get to find each other before users arrive.
const SETTLE: Duration = Duration::from_millis(500);

/// Relay processes, index 0 being the bootstrap relay.
pub struct Cluster {
    /// The relays, in start order.
    pub relays: Vec<RelayProcess>,
}

impl Cluster {
    /// Initializes and starts `count` relays under `work/relayN`.
    pub async fn start(work: &Path, count: usize) -> anyhow::Result<Cluster> {
        let mut relays: Vec<RelayProcess> = Vec::with_capacity(count);
        for index in 0..count {
            let dir = work.join(format!("relay{}", index + 1));
            let config = RelayConfig {
                name: format!("relay-{}", index + 1),
                listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
                bootstrap: relays
                    .first()
                    .map(|first| vec![first.addr.to_string()])
                    .unwrap_or_default(),
                ..RelayConfig::default()
            };
            tidings_relay::init(&dir, &config)?;
            relays.push(RelayProcess::start(&dir, "/ip4/127.0.0.1/tcp/0").await?);
        }
        tokio::time::sleep(SETTLE).await;
        Ok(Cluster { relays })
    }

    /// Stops every relay gracefully.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for relay in &mut self.relays {
            relay.stop().await?;
        }
        Ok(())
    }
}
