//! A network of relay processes on loopback: the first starts the DHT, the rest join it.

use std::{path::Path, time::Duration};

use tidings_relay::{RelayConfig, testing};

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
        Self::start_with(work, count, |_| {}).await
    }

    /// As [`Cluster::start`], with the per-user and per-relay rate limits lifted: benches
    /// measure what the relay can carry, not the policy that protects it.
    pub async fn start_unthrottled(work: &Path, count: usize) -> anyhow::Result<Cluster> {
        Self::start_with(work, count, |config| {
            let limits = &mut config.limits;
            limits.user_envelopes_per_sec = 1_000_000;
            limits.user_envelopes_burst = 1_000_000;
            limits.relay_envelopes_per_sec = 10_000_000;
            limits.relay_envelopes_burst = 10_000_000;
        })
        .await
    }

    /// As [`Cluster::start`], with each relay's configuration changed by `tweak` first.
    pub async fn start_with(
        work: &Path,
        count: usize,
        tweak: impl Fn(&mut RelayConfig),
    ) -> anyhow::Result<Cluster> {
        Self::start_prepared(work, count, tweak, |_| Ok(())).await
    }

    /// As [`Cluster::start_with`], with `prepare` run on each initialized data dir before its
    /// relay starts (to edit `relay.toml` by hand, say).
    pub async fn start_prepared(
        work: &Path,
        count: usize,
        tweak: impl Fn(&mut RelayConfig),
        prepare: impl Fn(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Cluster> {
        let mut relays: Vec<RelayProcess> = Vec::with_capacity(count);
        for index in 0..count {
            let dir = work.join(format!("relay{}", index + 1));
            let mut config = RelayConfig {
                name: format!("relay-{}", index + 1),
                bootstrap: relays
                    .first()
                    .map(|first| vec![first.addr.to_string()])
                    .unwrap_or_default(),
                metrics_listen: Some("127.0.0.1:0".into()),
                ..testing::loopback_config()
            };
            tweak(&mut config);
            tidings_relay::init(&dir, &config)?;
            prepare(&dir)?;
            relays.push(RelayProcess::start(&dir, "/ip4/127.0.0.1/tcp/0").await?);
        }
        tokio::time::sleep(SETTLE).await;
        Ok(Cluster { relays })
    }

    /// Forward batches carrying group envelopes, summed over the relays.
    pub async fn group_batches(&self) -> anyhow::Result<u64> {
        self.counter("tidings_forward_batches_total", &["kind=\"Group\""])
            .await
    }

    /// Envelopes of a kind (`Typing`, `Message`, ...) the relays stored, summed.
    pub async fn envelopes_stored(&self, kind: &str) -> anyhow::Result<u64> {
        self.counter(
            "tidings_envelopes_stored_total",
            &[&format!("kind=\"{kind}\"")],
        )
        .await
    }

    async fn counter(&self, name: &str, labels: &[&str]) -> anyhow::Result<u64> {
        let mut total = 0.0;
        for relay in &self.relays {
            total += relay.counter(name, labels).await?;
        }
        Ok(total as u64)
    }

    /// Stops every relay gracefully.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for relay in &mut self.relays {
            relay.stop().await?;
        }
        Ok(())
    }
}
