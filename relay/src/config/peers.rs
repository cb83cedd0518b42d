//! Limits per peer and in total: connections, streams, read timeouts, DHT records
//! (`[network]`), and key claims (`[claims]`).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Largest `network.accept_queue`: a waiting stream costs about a hundred bytes, so a full
/// queue stays under 7 MB per protocol.
pub const MAX_ACCEPT_QUEUE: usize = 65_536;

/// Connection and stream limits that keep one peer from taking what others need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Most established connections, devices and relays together.
    pub max_connections: u32,
    /// Most established connections with one peer.
    pub max_connections_per_peer: u32,
    /// Most incoming connections still in their handshake.
    pub max_pending_connections: u32,
    /// Most federation streams served at once, all other relays together.
    pub federation_streams: usize,
    /// Most federation streams served at once for one peer.
    pub federation_streams_per_peer: usize,
    /// Most client streams served at once for one device.
    pub client_streams_per_device: usize,
    /// A federation stream, or a device stream that has not registered, that completes no
    /// frame for this long is closed, in seconds.
    pub stream_idle_secs: u64,
    /// A frame whose first byte arrived must arrive whole within this, in seconds.
    pub frame_timeout_secs: u64,
    /// KiB of DHT records held for others (home records of users of other relays).
    pub dht_store_kib: u64,
    /// DHT records one peer may have stored here.
    pub dht_records_per_peer: u64,
    /// New streams of one protocol waiting to be taken (beyond it a stream is reset and
    /// counted in `streams_refused`, reason `backlog`).
    pub accept_queue: usize,
    /// A connection with no open stream is closed after this long, in seconds; links to other
    /// relays are kept open regardless.
    pub idle_connection_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_connections_per_peer: 8,
            max_pending_connections: 512,
            federation_streams: 1024,
            federation_streams_per_peer: 16,
            client_streams_per_device: 8,
            stream_idle_secs: 60,
            frame_timeout_secs: 30,
            dht_store_kib: 128 * 1024,
            dht_records_per_peer: 50_000,
            accept_queue: 4096,
            idle_connection_secs: 60,
        }
    }
}

impl NetworkConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, u64); 12] = [
            ("network.max_connections", self.max_connections.into()),
            (
                "network.max_connections_per_peer",
                self.max_connections_per_peer.into(),
            ),
            (
                "network.max_pending_connections",
                self.max_pending_connections.into(),
            ),
            ("network.federation_streams", self.federation_streams as u64),
            (
                "network.federation_streams_per_peer",
                self.federation_streams_per_peer as u64,
            ),
            (
                "network.client_streams_per_device",
                self.client_streams_per_device as u64,
            ),
            ("network.stream_idle_secs", self.stream_idle_secs),
            ("network.frame_timeout_secs", self.frame_timeout_secs),
            ("network.dht_store_kib", self.dht_store_kib),
            ("network.dht_records_per_peer", self.dht_records_per_peer),
            ("network.accept_queue", self.accept_queue as u64),
            ("network.idle_connection_secs", self.idle_connection_secs),
        ];
        for (key, value) in checks {
            if value == 0 {
                return Err(ConfigError::OutOfRange {
                    key,
                    value,
                    reason: "must be at least 1",
                });
            }
        }
        if self.accept_queue > MAX_ACCEPT_QUEUE {
            return Err(ConfigError::OutOfRange {
                key: "network.accept_queue",
                value: self.accept_queue as u64,
                reason: "must be at most 65536",
            });
        }
        if self.federation_streams_per_peer > self.federation_streams {
            return Err(ConfigError::OutOfRange {
                key: "network.federation_streams_per_peer",
                value: self.federation_streams_per_peer as u64,
                reason: "must not exceed network.federation_streams",
            });
        }
        Ok(())
    }
}

/// Key claims: how fast one-time keys are handed out, and how often another relay may ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimsConfig {
    /// One-time keys handed out per user and hour (at most this many at once); beyond it
    /// claims get the user's fallback key, so nobody can drain the one-time keys.
    pub one_time_keys_per_user_per_hour: u64,
    /// Claims (one per user asked for) another relay may make per second, sustained.
    pub relay_claims_per_sec: u64,
    /// ... and at once; beyond it they are answered `rate_limited`.
    pub relay_claims_burst: u64,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        Self {
            one_time_keys_per_user_per_hour: 20,
            relay_claims_per_sec: 100,
            relay_claims_burst: 2048,
        }
    }
}

impl ClaimsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("claims.relay_claims_per_sec", self.relay_claims_per_sec),
            ("claims.relay_claims_burst", self.relay_claims_burst),
        ] {
            if value == 0 {
                return Err(ConfigError::OutOfRange {
                    key,
                    value,
                    reason: "must be at least 1",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::RelayConfig;

    #[test]
    fn network_and_claim_limits_are_written_read_back_and_checked() {
        let mut config = RelayConfig::default();
        config.network.federation_streams_per_peer = 4;
        config.network.stream_idle_secs = 5;
        config.network.dht_store_kib = 64;
        config.claims.one_time_keys_per_user_per_hour = 0;
        assert_eq!(
            RelayConfig::parse(&config.to_commented_toml()),
            Ok(config.clone())
        );
        assert!(
            config.validate().is_ok(),
            "0 one-time keys an hour: fallback only"
        );
        config.network.federation_streams_per_peer = config.network.federation_streams + 1;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("federation_streams_per_peer"), "{error}");
        config.network.federation_streams_per_peer = 4;
        config.network.frame_timeout_secs = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("network.frame_timeout_secs"), "{error}");
        config.network.frame_timeout_secs = 1;
        config.claims.relay_claims_burst = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("claims.relay_claims_burst"), "{error}");
    }
}
