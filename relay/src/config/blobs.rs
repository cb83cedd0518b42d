//! Media blobs (`[blobs]`): sizes, quotas, how long blobs and unfinished uploads are kept,
//! and how many transfers run at once.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Media blob limits and lifetimes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobsConfig {
    /// Largest blob (ciphertext bytes) a device may upload; larger ones get `blob_too_large`.
    pub max_blob_bytes: u64,
    /// Media bytes one account may hold here: whole blobs it uploaded first plus the
    /// declared size of its unfinished uploads; beyond it `quota_exceeded`.
    pub user_quota_bytes: u64,
    /// How long a blob no stored envelope names is kept before it is deleted, in days.
    pub retention_days: u64,
    /// How long a finished upload counts as a reference (the sender's time to send the
    /// message naming it), in hours.
    pub upload_grace_hours: u64,
    /// How long an unfinished upload is kept for resuming, in hours.
    pub partial_expiry_hours: u64,
    /// How often garbage collection runs, in seconds.
    pub gc_interval_secs: u64,
    /// Most blob transfers served at once, all devices together.
    pub max_transfers: usize,
    /// Most blob transfers one device may have served at once.
    pub max_transfers_per_device: usize,
    /// Blob bytes per second served to one other relay fetching blobs from here.
    pub federation_bytes_per_sec: u64,
    /// Bytes of other relays' blobs this relay keeps for its users' downloads, all together
    /// (whole copies plus fetches under way); beyond it a download that needs a fetch gets
    /// `quota_exceeded` until older copies expire.
    pub fetched_quota_bytes: u64,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            max_blob_bytes: 100 * 1024 * 1024,
            user_quota_bytes: 1024 * 1024 * 1024,
            retention_days: 30,
            upload_grace_hours: 24,
            partial_expiry_hours: 24,
            gc_interval_secs: 600,
            max_transfers: 64,
            max_transfers_per_device: 4,
            federation_bytes_per_sec: 32 * 1024 * 1024,
            fetched_quota_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}

impl BlobsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one: [(&'static str, u64); 4] = [
            (
                "blobs.federation_bytes_per_sec",
                self.federation_bytes_per_sec,
            ),
            ("blobs.gc_interval_secs", self.gc_interval_secs),
            ("blobs.max_transfers", self.max_transfers as u64),
            (
                "blobs.max_transfers_per_device",
                self.max_transfers_per_device as u64,
            ),
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
        if self.max_blob_bytes > tidings_protocol::blob::MAX_BLOB_BYTES {
            return Err(ConfigError::OutOfRange {
                key: "blobs.max_blob_bytes",
                value: self.max_blob_bytes,
                reason: "must be at most 4 GiB (the protocol's bound)",
            });
        }
        Ok(())
    }

    /// `retention_days` in milliseconds.
    pub fn retention_ms(&self) -> u64 {
        self.retention_days.saturating_mul(24 * 3600 * 1000)
    }

    /// `upload_grace_hours` in milliseconds.
    pub fn grace_ms(&self) -> u64 {
        self.upload_grace_hours.saturating_mul(3600 * 1000)
    }

    /// `partial_expiry_hours` in milliseconds.
    pub fn partial_expiry_ms(&self) -> u64 {
        self.partial_expiry_hours.saturating_mul(3600 * 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::super::RelayConfig;

    #[test]
    fn blob_settings_are_written_read_back_and_checked() {
        let mut config = RelayConfig::default();
        config.blobs.user_quota_bytes = 5;
        config.blobs.retention_days = 0;
        assert_eq!(
            RelayConfig::parse(&config.to_commented_toml()),
            Ok(config.clone())
        );
        assert!(config.validate().is_ok());
        config.blobs.max_transfers_per_device = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("blobs.max_transfers_per_device"), "{error}");
        config.blobs.max_transfers_per_device = 1;
        config.blobs.max_blob_bytes = tidings_protocol::blob::MAX_BLOB_BYTES + 1;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("blobs.max_blob_bytes"), "{error}");
        assert_eq!(config.blobs.grace_ms(), 24 * 3600 * 1000);
    }
}
