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
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            mailbox_max_envelopes: 100_000,
            mailbox_max_bytes: 256 * 1024 * 1024,
            outbox_max_envelopes: 1_000_000,
            outbox_max_per_user: 20_000,
            relay_mailbox_max_envelopes: 1_000_000,
            dedupe_window_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Limits.
    pub limits: StoreLimits,
    /// This relay's peer id (text), to tell users homed here from users who moved.
    pub self_peer: String,
}
