//! A device that is only a client store, its identity and its published keys: tests feed it
//! envelopes directly, with no relay in between.

use tempfile::TempDir;
use tidings_client::store::ClientStore;
use tidings_keys::Identity;
use tidings_protocol::{KeyBundle, client::UploadKeys};

/// A client store with its identity and the keys it published (4 one-time keys).
pub struct StoreDevice {
    pub identity: Identity,
    pub store: ClientStore,
    pub upload: UploadKeys,
    _dir: TempDir,
}

impl StoreDevice {
    /// A fresh account's first device.
    pub fn new() -> Self {
        Self::with(Identity::generate())
    }

    /// A device with `identity` (another device of an account, say).
    pub fn with(identity: Identity) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = ClientStore::open(dir.path(), identity.store_key()).unwrap();
        let upload = store.keys_to_publish(&identity, 4).unwrap().unwrap();
        Self {
            identity,
            store,
            upload,
            _dir: dir,
        }
    }

    /// The bundle a claim of its `index`-th one-time key hands out.
    pub fn bundle(&self, index: usize) -> KeyBundle {
        KeyBundle {
            cert: self.identity.cert().clone(),
            identity: self.upload.identity.clone().unwrap(),
            prekey: self.upload.one_time_keys[index].clone(),
        }
    }
}
