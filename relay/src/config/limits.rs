//! Who may register, and the quotas and rates a relay enforces (`[registration]`, `[limits]`).

use serde::{Deserialize, Serialize};
use tidings_protocol::limits::MAX_GROUP_MEMBERS;

use super::ConfigError;

/// Who may register on this relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Anyone who connects.
    #[default]
    Open,
    /// Only with an invite code from `tidings-relay invite create`.
    Invite,
    /// Nobody new; registered users keep working.
    Closed,
}

/// Registration settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Who may register.
    pub policy: RegistrationPolicy,
    /// New accounts one source (IPv4 address, IPv6 /64) may register per hour, sustained.
    pub per_source_per_hour: u64,
    /// ... and at once.
    pub per_source_burst: u64,
    /// Whether connections from loopback are limited too (a local TLS proxy makes every
    /// browser come from loopback; a relay behind one should set this and trust the proxy's
    /// own limits, or keep it off).
    pub limit_loopback: bool,
    /// Most accounts under open registration; 0 means no cap. Invite codes are not counted
    /// against it (the operator hands them out).
    pub max_accounts: u64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            policy: RegistrationPolicy::default(),
            per_source_per_hour: 20,
            per_source_burst: 20,
            limit_loopback: false,
            max_accounts: 100_000,
        }
    }
}

/// Quotas and bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most device sessions served at once; more are refused.
    pub max_sessions: usize,
    /// Most undelivered envelopes kept for one user; more are refused with `quota_exceeded`.
    pub mailbox_max_envelopes: u64,
    /// Most bytes of undelivered envelopes kept for one user; more are refused with
    /// `quota_exceeded`.
    pub mailbox_max_bytes: u64,
    /// Most envelopes waiting to be forwarded to other relays; more are refused (retry).
    pub outbox_max_envelopes: u64,
    /// Most of those one local user's envelopes may hold (one entry per recipient elsewhere:
    /// a group message to members on other relays takes one per member); more are refused
    /// with `rate_limited` until other relays take some.
    pub outbox_max_per_user: u64,
    /// Most undelivered envelopes the forwards of one other relay may hold in the mailboxes
    /// here, all users together; more are refused with `rate_limited` (it retries later).
    pub relay_mailbox_max_envelopes: u64,
    /// Below this many free bytes on the data dir's filesystem the relay refuses work that
    /// grows its store (`storage_full`) and keeps serving reads and acks.
    pub min_free_disk_bytes: u64,
    /// How long envelope ids are remembered to drop duplicates, in hours.
    pub dedupe_window_hours: u64,
    /// Envelopes one local user may send per second, sustained (a group envelope is one);
    /// more are refused with `rate_limited` and retried by the client.
    pub user_envelopes_per_sec: u64,
    /// Envelopes one local user may send at once before the per-second rate applies.
    pub user_envelopes_burst: u64,
    /// Envelopes another relay may hand over per second, sustained, counted once per
    /// recipient here; more are refused with `rate_limited` and stay in its outbox.
    pub relay_envelopes_per_sec: u64,
    /// Envelopes (per recipient) another relay may hand over at once; at least the largest
    /// group, so one group envelope always fits.
    pub relay_envelopes_burst: u64,
    /// Most devices one account's device list may name; a longer list is refused with
    /// `quota_exceeded`.
    pub max_devices_per_account: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_sessions: 100_000,
            mailbox_max_envelopes: 100_000,
            mailbox_max_bytes: 256 * 1024 * 1024,
            outbox_max_envelopes: 1_000_000,
            outbox_max_per_user: 20_000,
            relay_mailbox_max_envelopes: 1_000_000,
            min_free_disk_bytes: 256 * 1024 * 1024,
            dedupe_window_hours: 7 * 24,
            user_envelopes_per_sec: 100,
            user_envelopes_burst: 1_000,
            relay_envelopes_per_sec: 10_000,
            relay_envelopes_burst: 100_000,
            max_devices_per_account: 8,
        }
    }
}

impl LimitsConfig {
    /// Checks that every rate limit can let something through.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let at_least = |key: &'static str, value: u64, min: u64, reason: &'static str| {
            if value < min {
                Err(ConfigError::OutOfRange { key, value, reason })
            } else {
                Ok(())
            }
        };
        at_least(
            "limits.user_envelopes_per_sec",
            self.user_envelopes_per_sec,
            1,
            "must be at least 1",
        )?;
        at_least(
            "limits.user_envelopes_burst",
            self.user_envelopes_burst,
            1,
            "must be at least 1",
        )?;
        at_least(
            "limits.relay_envelopes_per_sec",
            self.relay_envelopes_per_sec,
            1,
            "must be at least 1",
        )?;
        at_least(
            "limits.relay_envelopes_burst",
            self.relay_envelopes_burst,
            MAX_GROUP_MEMBERS as u64,
            "must be at least 1024 (the largest group), so one group envelope always fits",
        )?;
        at_least(
            "limits.max_devices_per_account",
            self.max_devices_per_account,
            1,
            "must be at least 1 (the publishing device)",
        )
    }
}
