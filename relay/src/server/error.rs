//! Why a relay could not start.

use super::LISTEN_TIMEOUT;
use crate::{
    config::ConfigError, network::NetworkError, node_key::NodeKeyError, store::StoreError,
};

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The data dir was never initialized.
    #[error("{0} is not a relay data dir; run `tidings-relay init --data-dir {0}` first")]
    NotInitialized(String),
    /// The data dir already holds a relay.
    #[error("{0} already holds a relay (relay.key exists); refusing to overwrite it")]
    AlreadyInitialized(String),
    /// Creating the data dir or writing the config failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The relay key is unusable.
    #[error(transparent)]
    NodeKey(#[from] NodeKeyError),
    /// The database could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The network could not start.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A listen address is held by another socket (often another relay on the same port).
    #[error(transparent)]
    AddressTaken(#[from] crate::listen_check::AddressTaken),
    /// The media blob store could not be opened or cleaned up.
    #[error("media blobs: {0}")]
    Blobs(String),
    /// Push could not start.
    #[error(transparent)]
    Push(#[from] crate::push::PushError),
    /// A listener did not come up in time.
    #[error("listeners did not report their addresses within {LISTEN_TIMEOUT:?}")]
    ListenTimeout,
    /// The TLS certificate or key for `/tls/ws` cannot be used.
    #[error("websocket TLS: {0}")]
    Tls(#[from] crate::network::websocket::TlsError),
    /// The old files could not be copied aside before a migration (nothing was migrated).
    #[error(
        "copying the data dir aside before migrating it: {0} (free space, or start with \
         --no-backup-before-upgrade)"
    )]
    PreUpgradeCopy(#[source] crate::backup::BackupError),
}
