//! The relay's TOML configuration, its defaults and the commented file `init` writes.

use std::path::Path;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// File name of the configuration inside the data dir.
pub const CONFIG_FILE: &str = "relay.toml";

mod blobs;
mod keys;
mod limits;
mod peers;
mod push;
mod template;
mod web;

pub use blobs::BlobsConfig;
pub use limits::{LimitsConfig, RegistrationConfig, RegistrationPolicy};
pub use peers::{ClaimsConfig, NetworkConfig};
pub use push::{MAX_RETRY_AFTER_SECS, PushConfig, Urgency};
pub use web::{WebConfig, WebSocketConfig, is_tls_ws};

/// Default TCP and UDP (QUIC) port.
pub const DEFAULT_PORT: u16 = 4717;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said, with the line.
        message: String,
    },
    /// A listen address is not a multiaddr.
    #[error("listen address {address:?} is not a multiaddr: {reason}")]
    BadAddress {
        /// The text given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A setting is outside the range it may take.
    #[error("{key} = {value}: {reason}")]
    OutOfRange {
        /// The setting, as written in the file.
        key: &'static str,
        /// The value given.
        value: u64,
        /// What it must be.
        reason: &'static str,
    },
    /// A setting needs another one that is missing.
    #[error("{key}: {reason}")]
    Incomplete {
        /// The setting, as written in the file.
        key: &'static str,
        /// What is missing.
        reason: String,
    },
}

/// relay.redb's page cache unless configured, in MiB. redb's own default (1 GiB) let a busy
/// relay's RSS grow past a gigabyte; measured in `bench relay`, a smaller cache kept the
/// same throughput (the hot pages are few: new mail, the dedupe ids of the moment).
pub const DEFAULT_STORE_CACHE_MIB: u64 = 128;
/// Largest page cache one may configure, in MiB.
const MAX_STORE_CACHE_MIB: u64 = 65_536;

/// Forwarding to other relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// How long an envelope for another relay is retried before its sender is told it failed,
    /// in seconds.
    pub undeliverable_after_secs: u64,
    /// The first pause before forwarding to a relay that failed again (doubling each time),
    /// in milliseconds. A relay that connects again is tried at once.
    pub forward_retry_min_ms: u64,
    /// The longest pause between attempts to forward to a relay, in milliseconds.
    pub forward_retry_max_ms: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            undeliverable_after_secs: 7 * 24 * 3600,
            forward_retry_min_ms: 500,
            forward_retry_max_ms: 60_000,
        }
    }
}

/// Presence: how fast a silent device counts as gone, how long remote watches last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// A subscribed device that sends nothing (not even a heartbeat) for this long is taken
    /// as gone: its stream is closed and, if it was the last, the user goes offline.
    pub heartbeat_timeout_secs: u64,
    /// How long a watch from another relay lasts unless renewed (renewed at a third).
    pub watch_ttl_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout_secs: 30,
            watch_ttl_secs: 90,
        }
    }
}

/// Everything `relay.toml` may set. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// A human name for the relay, shown to operators and in logs.
    pub name: String,
    /// Multiaddrs to listen on (TCP with Noise+Yamux, and QUIC).
    pub listen: Vec<String>,
    /// Addresses to tell others (home records, cards); empty means the listen addresses.
    pub announce: Vec<String>,
    /// Relays to join the DHT through (`.../p2p/<peer id>`); empty starts a new network.
    pub bootstrap: Vec<String>,
    /// Where to serve Prometheus `/metrics` and `/healthz` (host:port); none: not served.
    pub metrics_listen: Option<String>,
    /// Memory for relay.redb's page cache, in MiB.
    pub store_cache_mib: u64,
    /// Registration settings.
    pub registration: RegistrationConfig,
    /// Quotas and bounds.
    pub limits: LimitsConfig,
    /// Forwarding to other relays.
    pub federation: FederationConfig,
    /// Presence heartbeats and watches.
    pub presence: PresenceConfig,
    /// Connection and stream limits per peer and in total, and read timeouts.
    pub network: NetworkConfig,
    /// Key claims: one-time keys per user and hour, claims per other relay.
    pub claims: ClaimsConfig,
    /// Media blobs: sizes, quotas, retention, transfers at once.
    pub blobs: BlobsConfig,
    /// Web Push: waking devices that are not connected.
    pub push: PushConfig,
    /// Status updates: how often expired ones are deleted.
    pub status: StatusConfig,
    /// TLS the relay terminates itself on `/tls/ws` listen addresses.
    pub websocket: WebSocketConfig,
    /// Serving the browser page.
    pub web: WebConfig,
}

/// Status updates (24-hour stories).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// How often the sweep deletes statuses past their expiry (delivered or not).
    pub sweep_interval_secs: u64,
    /// The first pause before handing a status to another relay again (doubling each time).
    pub forward_retry_min_ms: u64,
    /// The longest pause between attempts to hand a status to another relay.
    pub forward_retry_max_ms: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            sweep_interval_secs: 60,
            forward_retry_min_ms: 1000,
            forward_retry_max_ms: 60_000,
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "tidings-relay".into(),
            listen: vec![
                format!("/ip4/0.0.0.0/tcp/{DEFAULT_PORT}"),
                format!("/ip4/0.0.0.0/udp/{DEFAULT_PORT}/quic-v1"),
            ],
            announce: Vec::new(),
            bootstrap: Vec::new(),
            metrics_listen: None,
            store_cache_mib: DEFAULT_STORE_CACHE_MIB,
            registration: RegistrationConfig::default(),
            limits: LimitsConfig::default(),
            federation: FederationConfig::default(),
            presence: PresenceConfig::default(),
            network: NetworkConfig::default(),
            claims: ClaimsConfig::default(),
            blobs: BlobsConfig::default(),
            push: PushConfig::default(),
            status: StatusConfig::default(),
            websocket: WebSocketConfig::default(),
            web: WebConfig::default(),
        }
    }
}

impl RelayConfig {
    /// Reads `relay.toml` from the data dir.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }

    /// The listen addresses as multiaddrs.
    pub fn listen_addrs(&self) -> Result<Vec<Multiaddr>, ConfigError> {
        parse_addrs(&self.listen)
    }

    /// The bootstrap relays as multiaddrs (each must end in `/p2p/<peer id>`).
    pub fn bootstrap_addrs(&self) -> Result<Vec<Multiaddr>, ConfigError> {
        let addrs = parse_addrs(&self.bootstrap)?;
        for (text, address) in self.bootstrap.iter().zip(&addrs) {
            if !matches!(
                address.iter().last(),
                Some(libp2p::multiaddr::Protocol::P2p(_))
            ) {
                return Err(ConfigError::BadAddress {
                    address: text.clone(),
                    reason: "a bootstrap address must end in /p2p/<peer id>".into(),
                });
            }
        }
        Ok(addrs)
    }

    /// Checks every address in the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.websocket.validate(&self.listen_addrs()?)?;
        self.web.listen_addr()?;
        self.bootstrap_addrs()?;
        parse_addrs(&self.announce)?;
        self.metrics_addr()?;
        self.limits.validate()?;
        self.network.validate()?;
        self.claims.validate()?;
        self.blobs.validate()?;
        self.push.validate()?;
        for (key, value) in [
            (
                "registration.per_source_per_hour",
                self.registration.per_source_per_hour,
            ),
            (
                "registration.per_source_burst",
                self.registration.per_source_burst,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::OutOfRange {
                    key,
                    value,
                    reason: "must be at least 1 (use policy = \"closed\" to take nobody)",
                });
            }
        }
        if !(1..=MAX_STORE_CACHE_MIB).contains(&self.store_cache_mib) {
            return Err(ConfigError::OutOfRange {
                key: "store_cache_mib",
                value: self.store_cache_mib,
                reason: "must be 1 to 65536 (MiB)",
            });
        }
        if self.presence.heartbeat_timeout_secs == 0 {
            return Err(ConfigError::OutOfRange {
                key: "presence.heartbeat_timeout_secs",
                value: 0,
                reason: "must be at least 1 (devices need time to send a heartbeat)",
            });
        }
        if self.presence.watch_ttl_secs < 3 {
            return Err(ConfigError::OutOfRange {
                key: "presence.watch_ttl_secs",
                value: self.presence.watch_ttl_secs,
                reason: "must be at least 3 (watches are renewed at a third of it)",
            });
        }
        Ok(())
    }

    /// The metrics endpoint's address, if one is configured.
    pub fn metrics_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        self.metrics_listen
            .as_ref()
            .map(|address| {
                address.parse().map_err(|_| ConfigError::BadAddress {
                    address: address.clone(),
                    reason: "expected host:port, e.g. 127.0.0.1:9717".into(),
                })
            })
            .transpose()
    }

    /// The configuration as a commented TOML file, for `init`: every key with its doc, its
    /// default and this configuration's value.
    pub fn to_commented_toml(&self) -> String {
        template::render(self)
    }
}

fn parse_addrs(addrs: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    addrs
        .iter()
        .map(|address| {
            address
                .parse()
                .map_err(|error: libp2p::multiaddr::Error| ConfigError::BadAddress {
                    address: address.clone(),
                    reason: error.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commented_template_parses_back_to_the_same_config() {
        let mut config = RelayConfig::default();
        config.registration.policy = RegistrationPolicy::Invite;
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.bootstrap = vec![
            "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".into(),
        ];
        config.federation.undeliverable_after_secs = 60;
        assert_eq!(
            RelayConfig::parse(&config.to_commented_toml()),
            Ok(config.clone())
        );
        assert!(config.validate().is_ok());
        config.bootstrap = vec!["/ip4/127.0.0.1/tcp/1".into()];
        assert!(config.validate().is_err(), "bootstrap needs a peer id");
    }

    #[test]
    fn an_empty_file_means_defaults_and_unknown_keys_are_errors() {
        assert_eq!(RelayConfig::parse(""), Ok(RelayConfig::default()));
        let error = RelayConfig::parse("nmae = \"typo\"").unwrap_err();
        assert!(error.contains("nmae"), "{error}");
    }

    #[test]
    fn bad_listen_addresses_are_reported_by_text() {
        let config = RelayConfig {
            listen: vec!["localhost:80".into()],
            ..RelayConfig::default()
        };
        assert!(matches!(
            config.listen_addrs(),
            Err(ConfigError::BadAddress { address, .. }) if address == "localhost:80"
        ));
    }

    #[test]
    fn presence_timings_out_of_range_are_refused_by_name() {
        let mut config = RelayConfig::default();
        config.presence.heartbeat_timeout_secs = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("heartbeat_timeout_secs"), "{error}");
        config.presence.heartbeat_timeout_secs = 1;
        config.presence.watch_ttl_secs = 2;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("watch_ttl_secs"), "{error}");
        config.presence.watch_ttl_secs = 3;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_store_cache_of_nothing_or_beyond_64_gib_is_refused_by_name() {
        for (mib, ok) in [(0, false), (1, true), (65_536, true), (65_537, false)] {
            let config = RelayConfig {
                store_cache_mib: mib,
                ..RelayConfig::default()
            };
            match config.validate() {
                Ok(()) => assert!(ok, "{mib} MiB taken"),
                Err(error) => {
                    assert!(!ok, "{mib} MiB refused: {error}");
                    assert!(error.to_string().contains("store_cache_mib"), "{error}");
                }
            }
        }
    }

    #[test]
    fn rate_limits_are_written_read_back_and_checked() {
        let mut config = RelayConfig::default();
        config.limits.user_envelopes_per_sec = 7;
        config.limits.relay_envelopes_burst = 5000;
        assert_eq!(
            RelayConfig::parse(&config.to_commented_toml()),
            Ok(config.clone())
        );
        config.limits.user_envelopes_per_sec = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("limits.user_envelopes_per_sec"), "{error}");
        config.limits.user_envelopes_per_sec = 1;
        config.limits.relay_envelopes_burst = 1023;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("limits.relay_envelopes_burst"), "{error}");
        config.limits.relay_envelopes_burst = 1024;
        assert!(config.validate().is_ok());
    }
}
