//! Web Push (`[push]`): whether the relay wakes offline devices, how often, and the bounds
//! on its POSTs to push services.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Longest `Retry-After` (and backoff) honoured, in seconds: one hour.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// Longest `ttl_secs` accepted: 28 days (push services cap it lower anyway).
const MAX_TTL_SECS: u64 = 28 * 24 * 3600;

/// Most attempts a push may be given.
const MAX_ATTEMPTS: u32 = 20;

/// Longest `contact` accepted, in bytes (it goes into every VAPID token).
const MAX_CONTACT_BYTES: usize = 256;

/// How urgently the push service should deliver (RFC 8030 section 5.3, the `Urgency` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    /// Deliver even on battery saving.
    VeryLow,
    /// Low.
    Low,
    /// The push service's default.
    Normal,
    /// Deliver at once (a chat message).
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// Push settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Whether devices may register a push subscription and get pushes.
    pub enabled: bool,
    /// At most one push per device per this many seconds; messages meanwhile are counted
    /// into the next.
    pub interval_secs: u64,
    /// How long the push service keeps an undelivered push, in seconds (`TTL`).
    pub ttl_secs: u64,
    /// The `Urgency` header.
    pub urgency: Urgency,
    /// Who runs the relay (the VAPID `sub`: a `mailto:` or `https:` URL).
    pub contact: String,
    /// Longest one POST to a push service may take, in seconds.
    pub timeout_secs: u64,
    /// Most POSTs under way at once.
    pub max_in_flight: usize,
    /// Most tries of one push (retries on 429, 5xx, timeouts and connection errors).
    pub max_attempts: u32,
    /// Whether endpoints may be `http://` and point at loopback or private addresses
    /// (tests, a push server on the LAN). Off: an SSRF guard.
    pub allow_private_endpoints: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
            ttl_secs: 86_400,
            urgency: Urgency::High,
            contact: "mailto:postmaster@localhost".into(),
            timeout_secs: 10,
            max_in_flight: 64,
            max_attempts: 5,
            allow_private_endpoints: false,
        }
    }
}

impl PushConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one: [(&'static str, u64); 3] = [
            ("push.timeout_secs", self.timeout_secs),
            ("push.max_in_flight", self.max_in_flight as u64),
            ("push.max_attempts", u64::from(self.max_attempts)),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err(ConfigError::OutOfRange {
                    key,
                    value,
                    reason: "must be at least 1",
                });
            }
        }
        if self.max_attempts > MAX_ATTEMPTS {
            return Err(ConfigError::OutOfRange {
                key: "push.max_attempts",
                value: u64::from(self.max_attempts),
                reason: "must be at most 20",
            });
        }
        if self.ttl_secs > MAX_TTL_SECS {
            return Err(ConfigError::OutOfRange {
                key: "push.ttl_secs",
                value: self.ttl_secs,
                reason: "must be at most 2419200 (28 days)",
            });
        }
        if self.interval_secs > MAX_RETRY_AFTER_SECS {
            return Err(ConfigError::OutOfRange {
                key: "push.interval_secs",
                value: self.interval_secs,
                reason: "must be at most 3600",
            });
        }
        let contact_ok = (self.contact.starts_with("mailto:")
            || self.contact.starts_with("https://"))
            && self.contact.len() <= MAX_CONTACT_BYTES
            && !self.contact.chars().any(|c| c.is_control() || c == '"');
        if !contact_ok {
            return Err(ConfigError::OutOfRange {
                key: "push.contact",
                value: self.contact.len() as u64,
                reason: "must be a mailto: or https: URL of at most 256 bytes",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::RelayConfig;
    use super::Urgency;

    #[test]
    fn push_settings_are_written_read_back_and_checked() {
        let mut config = RelayConfig::default();
        config.push.interval_secs = 3;
        config.push.urgency = Urgency::VeryLow;
        config.push.allow_private_endpoints = true;
        assert_eq!(
            RelayConfig::parse(&config.to_commented_toml()),
            Ok(config.clone())
        );
        assert!(config.validate().is_ok());
        config.push.max_in_flight = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("push.max_in_flight"), "{error}");
        config.push.max_in_flight = 1;
        config.push.contact = "postmaster".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("push.contact"), "{error}");
        let parsed = RelayConfig::parse("[push]\nurgency = \"very-low\"\n").unwrap();
        assert_eq!(parsed.push.urgency, Urgency::VeryLow);
        assert!(RelayConfig::parse("[push]\nurgency = \"now\"\n").is_err());
    }
}
