//! The relay's TOML configuration, its defaults and the commented file `init` writes.

use std::path::Path;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// File name of the configuration inside the data dir.
pub const CONFIG_FILE: &str = "relay.toml";

mod limits;
mod peers;

pub use limits::{LimitsConfig, RegistrationConfig, RegistrationPolicy};
pub use peers::{ClaimsConfig, NetworkConfig};

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
}

/// Forwarding to other relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// How long an envelope for another relay is retried before its sender is told it failed,
    /// in seconds.
    pub undeliverable_after_secs: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            undeliverable_after_secs: 7 * 24 * 3600,
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
            registration: RegistrationConfig::default(),
            limits: LimitsConfig::default(),
            federation: FederationConfig::default(),
            presence: PresenceConfig::default(),
            network: NetworkConfig::default(),
            claims: ClaimsConfig::default(),
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
        self.listen_addrs()?;
        self.bootstrap_addrs()?;
        parse_addrs(&self.announce)?;
        self.metrics_addr()?;
        self.limits.validate()?;
        self.network.validate()?;
        self.claims.validate()?;
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

    /// The configuration as a commented TOML file, for `init`.
    pub fn to_commented_toml(&self) -> String {
        let listen = toml_list(&self.listen);
        let announce = toml_list(&self.announce);
        let bootstrap = toml_list(&self.bootstrap);
        let policy = match self.registration.policy {
            RegistrationPolicy::Open => "open",
            RegistrationPolicy::Invite => "invite",
            RegistrationPolicy::Closed => "closed",
        };
        format!(
            r#"# Tidings relay configuration, written by `tidings-relay init`.
# Every key is optional: a missing key takes the default shown in the comment above it.

# A human name for this relay, shown in logs. Default: "tidings-relay".
name = {name}

# Where to listen, as libp2p multiaddrs. TCP carries Noise + Yamux; "udp/.../quic-v1" is QUIC.
# Port 0 picks a free port. `tidings-relay run --listen ADDR` overrides this list.
# Default: ["/ip4/0.0.0.0/tcp/{DEFAULT_PORT}", "/ip4/0.0.0.0/udp/{DEFAULT_PORT}/quic-v1"]
listen = [{listen}]

# Addresses others should dial (put in home records and contact cards), for relays behind
# NAT or a proxy. Default: [] (the addresses it listens on).
announce = [{announce}]

# Relays to join the network through, each ending in /p2p/<peer id> (as printed by
# `tidings-relay run`). Relays find each other and each other's users through a Kademlia
# DHT; a relay with no bootstrap starts a new network. Default: [].
bootstrap = [{bootstrap}]

# Where to serve Prometheus metrics (/metrics) and a health check (/healthz), as host:port.
# Keep it on loopback or a private network. Comment it out to serve nothing.
{metrics}

[registration]
# Who may register: "open" (anyone), "invite" (an invite code from
# `tidings-relay invite create`), or "closed" (nobody new). Default: "open".
policy = "{policy}"
# New accounts one source (an IPv4 address, or an IPv6 /64) may register per hour, sustained,
# and at once; beyond it `rate_limited`. Default: 20 and 20.
per_source_per_hour = {per_source}
per_source_burst = {per_source_burst}
# Whether registrations from loopback count against those limits too. A relay behind a local
# proxy (browsers over /ws through a TLS proxy) sees every client as loopback: keep it off and
# let the proxy limit, or turn it on to treat them all as one source. Default: false.
limit_loopback = {limit_loopback}
# Most accounts this relay keeps under open registration; 0: no cap. Beyond it new
# registrations get `registration_closed`. Default: 100000.
max_accounts = {max_accounts}

[limits]
# Most device sessions served at once. Default: 100000.
max_sessions = {max_sessions}
# Most undelivered envelopes kept for one user; senders get `quota_exceeded` beyond it.
# Default: 100000.
mailbox_max_envelopes = {mailbox}
# Most bytes of undelivered envelopes kept for one user (a group message counts its full size
# for every member it waits for). Default: 268435456 (256 MiB).
mailbox_max_bytes = {mailbox_bytes}
# Most envelopes waiting to be forwarded to other relays. Default: 1000000.
outbox_max_envelopes = {outbox}
# Most of those one user's messages may hold: one entry per recipient on another relay (a
# group message takes one per member elsewhere), so members nobody can reach fill their
# sender's share, not everyone's. Beyond it: `rate_limited` until other relays take some.
# Default: 20000.
outbox_max_per_user = {outbox_per_user}
# Most undelivered envelopes one other relay's forwards may hold in the mailboxes here, all
# users together; beyond it that relay gets `rate_limited` and keeps them in its outbox until
# users here take some. Default: 1000000.
relay_mailbox_max_envelopes = {relay_mailbox}
# Below this many free bytes on the data dir's filesystem the relay refuses what would grow
# its store (sends, forwards, registrations, key uploads) with `storage_full`, which senders
# retry, and keeps serving reads and acks; /healthz says so. Default: 268435456 (256 MiB).
min_free_disk_bytes = {min_free_disk}
# How long envelope ids are remembered so retries are not stored twice, in hours.
# Default: 168 (7 days).
dedupe_window_hours = {dedupe}
# Rate limits (token buckets). A sender over its limit gets `rate_limited` for the envelopes
# beyond it (never a silent drop): clients keep those messages and retry them later, other
# relays keep them in their outbox. What passes keeps the sender's order.
# Envelopes one user of this relay may send per second, sustained (a group message counts
# once: this relay fans it out). Default: 100.
user_envelopes_per_sec = {user_rate}
# ... and at once, e.g. after being offline with messages queued. Default: 1000.
user_envelopes_burst = {user_burst}
# Envelopes another relay may hand over per second, counted once per recipient here.
# Default: 10000.
relay_envelopes_per_sec = {relay_rate}
# ... and at once; at least 1024 (the largest group). Default: 100000.
relay_envelopes_burst = {relay_burst}

[federation]
# How long an envelope for a user on another relay is retried before its sender is told it
# could not be delivered, in seconds. Default: 604800 (7 days).
undeliverable_after_secs = {undeliverable}

[presence]
# A connected device that sends nothing, not even its heartbeat (clients send one every
# third of this), for this long is taken as gone and its user shown offline. Default: 30.
heartbeat_timeout_secs = {heartbeat}
# How long another relay's watch on a user's presence lasts unless renewed (relays renew at
# a third of it, so a restarted relay is watched again within that). Default: 90.
watch_ttl_secs = {watch_ttl}

[network]
# Limits that keep one peer (a device, another relay, or a stranger) from taking what the
# others need. Beyond them new connections or streams are refused and counted in /metrics.
# Most established connections, all peers together. Default: 100000.
max_connections = {max_connections}
# Most established connections with one peer. Default: 8.
max_connections_per_peer = {connections_per_peer}
# Most incoming connections still in their handshake. Default: 512.
max_pending_connections = {pending_connections}
# Most streams from other relays served at once, all together. One peer may hold at most
# federation_streams_per_peer of them, and once three quarters are taken only peers holding
# none get one, so a relay that needs its first stream still finds room. Default: 1024.
federation_streams = {federation_streams}
# Most streams from one other relay served at once (a relay uses one). Default: 16.
federation_streams_per_peer = {federation_streams_per_peer}
# Most client streams of one device served at once. Default: 8.
client_streams_per_device = {client_streams_per_device}
# A stream from another relay, or from a device that has not registered, that sends no
# complete frame for this long is closed (the other side opens a new one when it needs
# it), in seconds. Default: 60.
stream_idle_secs = {stream_idle}
# A frame whose first byte has arrived must arrive whole within this many seconds, or
# its stream is closed. Default: 30.
frame_timeout_secs = {frame_timeout}
# KiB of DHT records (home records of other relays' users) this relay holds for the network.
# A peer may store at most dht_records_per_peer of them; records that do not come from the
# relay they name as home only fill half of it. Default: 131072 (128 MiB).
dht_store_kib = {dht_store_kib}
# DHT records one peer may have stored here. Default: 50000.
dht_records_per_peer = {dht_records_per_peer}

[claims]
# One-time keys of a user handed out per hour (and at most this many at once). Beyond it a
# claim gets the user's fallback key instead, so nobody can drain the one-time keys (the
# session still opens; only its first message lacks one-time forward secrecy). 0: always the
# fallback key. Default: 20.
one_time_keys_per_user_per_hour = {otk_per_hour}
# Key claims another relay may make per second (one per user asked for), sustained; beyond
# it they are answered `rate_limited` and its users retry. Default: 100.
relay_claims_per_sec = {claims_rate}
# ... and at once. Default: 2048.
relay_claims_burst = {claims_burst}
"#,
            otk_per_hour = self.claims.one_time_keys_per_user_per_hour,
            claims_rate = self.claims.relay_claims_per_sec,
            claims_burst = self.claims.relay_claims_burst,
            max_connections = self.network.max_connections,
            connections_per_peer = self.network.max_connections_per_peer,
            pending_connections = self.network.max_pending_connections,
            federation_streams = self.network.federation_streams,
            federation_streams_per_peer = self.network.federation_streams_per_peer,
            client_streams_per_device = self.network.client_streams_per_device,
            stream_idle = self.network.stream_idle_secs,
            frame_timeout = self.network.frame_timeout_secs,
            dht_store_kib = self.network.dht_store_kib,
            dht_records_per_peer = self.network.dht_records_per_peer,
            heartbeat = self.presence.heartbeat_timeout_secs,
            watch_ttl = self.presence.watch_ttl_secs,
            name = toml_string(&self.name),
            max_sessions = self.limits.max_sessions,
            per_source = self.registration.per_source_per_hour,
            per_source_burst = self.registration.per_source_burst,
            limit_loopback = self.registration.limit_loopback,
            max_accounts = self.registration.max_accounts,
            mailbox = self.limits.mailbox_max_envelopes,
            mailbox_bytes = self.limits.mailbox_max_bytes,
            outbox = self.limits.outbox_max_envelopes,
            outbox_per_user = self.limits.outbox_max_per_user,
            relay_mailbox = self.limits.relay_mailbox_max_envelopes,
            min_free_disk = self.limits.min_free_disk_bytes,
            metrics = match &self.metrics_listen {
                Some(address) => format!("metrics_listen = {}", toml_string(address)),
                None => "# metrics_listen = \"127.0.0.1:9717\"".to_string(),
            },
            undeliverable = self.federation.undeliverable_after_secs,
            dedupe = self.limits.dedupe_window_hours,
            user_rate = self.limits.user_envelopes_per_sec,
            user_burst = self.limits.user_envelopes_burst,
            relay_rate = self.limits.relay_envelopes_per_sec,
            relay_burst = self.limits.relay_envelopes_burst,
        )
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

/// `text` as a TOML string. Rust's `{:?}` is no TOML: it writes `\u{feff}` or `\0`, which
/// made `init` write a file `run` cannot read (found by the `relay_config` fuzz check).
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn toml_list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| toml_string(item))
        .collect::<Vec<_>>()
        .join(", ")
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
