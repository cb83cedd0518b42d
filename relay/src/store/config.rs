//! How the store is set up: its limits and which relay it belongs to.

/// Limits the store enforces.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Most unacked envelopes in one mailbox.
    pub mailbox_max_envelopes: u64,
    /// Most bytes of unacked envelopes in one mailbox.
    pub mailbox_max_bytes: u64,
    /// Most envelopes waiting in the outbox.
    pub outbox_max_envelopes: u64,
    /// Most outbox entries one local user's envelopes may hold.
    pub outbox_max_per_user: u64,
    /// Most mailbox entries one other relay's forwards may hold here.
    pub relay_mailbox_max_envelopes: u64,
    /// How long envelope ids are remembered for dedupe.
    pub dedupe_window_ms: u64,
    /// Most devices one account's device list may name.
    pub max_devices_per_account: u64,
}

impl From<&crate::config::LimitsConfig> for StoreLimits {
    fn from(limits: &crate::config::LimitsConfig) -> Self {
        Self {
            mailbox_max_envelopes: limits.mailbox_max_envelopes,
            mailbox_max_bytes: limits.mailbox_max_bytes,
            outbox_max_envelopes: limits.outbox_max_envelopes,
            outbox_max_per_user: limits.outbox_max_per_user,
            relay_mailbox_max_envelopes: limits.relay_mailbox_max_envelopes,
            dedupe_window_ms: limits.dedupe_window_hours.max(1) * 3600 * 1000,
            max_devices_per_account: limits.max_devices_per_account,
        }
    }
}

/// The configuration's defaults (`limits` in relay.toml).
impl Default for StoreLimits {
    fn default() -> Self {
        Self::from(&crate::config::LimitsConfig::default())
    }
}

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Limits.
    pub limits: StoreLimits,
    /// This relay's peer id (text), to tell users homed here from users who moved.
    pub self_peer: String,
    /// Bytes of redb page cache.
    pub cache_bytes: usize,
}
