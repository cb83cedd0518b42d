//! The browser device's storage: its key file and redb store in OPFS, opened in a Dedicated Worker.
//!
//! A device lives in one OPFS directory holding [`KEY_FILE`] (the same bytes and passphrase
//! sealing as the CLI's key file) and [`STORE_FILE`] (redb on [`OpfsFile`]). The store is
//! protected at rest as on the CLI: the crypto state in it is sealed under the store key from
//! the key file; the history is in the clear, readable by this origin only.

pub mod opfs;

use std::path::Path;

use tidings_keys::{Identity, KeyFileError};

pub use opfs::{OpfsError, OpfsFile};

use crate::{
    Client, ClientError, KEY_FILE,
    store::{ClientStore, STORE_FILE, StoreError},
};

/// Why a browser device could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// OPFS is missing, or refused to open a file (another tab has this device open).
    #[error(transparent)]
    Opfs(#[from] OpfsError),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The key file does not open (wrong passphrase, corrupt).
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The store does not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A device already lives in this directory.
    #[error("a device already exists in {0}")]
    AlreadyInitialized(String),
    /// No device lives in this directory.
    #[error("no device in {0}")]
    NotInitialized(String),
}

impl From<BrowserError> for ClientError {
    fn from(error: BrowserError) -> Self {
        match error {
            BrowserError::KeyFile(error) => ClientError::Keys(error),
            BrowserError::Store(error) => ClientError::Store(error),
            BrowserError::AlreadyInitialized(dir) => ClientError::AlreadyInitialized(dir.into()),
            BrowserError::NotInitialized(dir) => ClientError::NotInitialized(dir.into()),
            other => ClientError::Io {
                path: Default::default(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

/// Whether a device lives in the OPFS directory `dir`. An empty key file is none: a device
/// whose creation was cut short (a tab closed) before its key file was written.
pub async fn device_exists(dir: &str) -> Result<bool, BrowserError> {
    if !opfs::exists(dir, KEY_FILE).await? {
        return Ok(false);
    }
    let key_file = OpfsFile::open(dir, KEY_FILE).await?;
    let written = key_file.size()? > 0;
    key_file.close();
    Ok(written)
}

/// Creates a new device (a new account) in the OPFS directory `dir`, its key file sealed
/// under `passphrase` if given.
pub async fn create_device(dir: &str, passphrase: Option<&str>) -> Result<Client, BrowserError> {
    save_device(dir, Identity::generate(), passphrase).await
}

/// Saves `identity` (a linked or imported device) as the key file of a new device in `dir`
/// and opens it.
pub async fn save_device(
    dir: &str,
    identity: Identity,
    passphrase: Option<&str>,
) -> Result<Client, BrowserError> {
    if device_exists(dir).await? {
        return Err(BrowserError::AlreadyInitialized(dir.into()));
    }
    // Sealed first (Argon2id takes a while): the file exists only once its bytes are ready.
    let bytes = identity.to_file_bytes(passphrase)?;
    let key_file = OpfsFile::open(dir, KEY_FILE).await?;
    key_file.replace(&bytes)?;
    key_file.close();
    with_store(dir, identity).await
}

/// Opens the device in `dir`, unlocking its key file with `passphrase`.
pub async fn open_device(dir: &str, passphrase: Option<&str>) -> Result<Client, BrowserError> {
    if !device_exists(dir).await? {
        return Err(BrowserError::NotInitialized(dir.into()));
    }
    let key_file = OpfsFile::open(dir, KEY_FILE).await?;
    let bytes = zeroize::Zeroizing::new(key_file.read_all()?);
    key_file.close();
    let identity = Identity::from_file_bytes(&bytes, passphrase)?;
    with_store(dir, identity).await
}

async fn with_store(dir: &str, identity: Identity) -> Result<Client, BrowserError> {
    let store =
        ClientStore::open_backend(OpfsFile::open(dir, STORE_FILE).await?, identity.store_key())?;
    Ok(Client::with_store(Path::new(dir), identity, store))
}
