//! The relay's libp2p key: created once by `init`, kept in the data dir, never world-readable.

use std::{
    fs::File,
    io::{Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use libp2p::identity::Keypair;
use zeroize::Zeroizing;

/// File name of the relay key inside the data dir.
pub const KEY_FILE: &str = "relay.key";

/// Largest relay key file accepted; an ed25519 key in libp2p's encoding is 68 bytes.
const MAX_KEY_FILE_BYTES: usize = 4096;

/// Why the relay key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file does not hold a libp2p key.
    #[error("{path}: not a relay key ({reason})")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Group or others may read the file.
    #[error("{path}: readable by others (mode {mode:o}); run `chmod 600` on it")]
    InsecurePermissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> NodeKeyError + '_ {
    move |source| NodeKeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a fresh ed25519 key to `data_dir/relay.key` (mode 0600), refusing to overwrite.
pub fn create(data_dir: &Path) -> Result<Keypair, NodeKeyError> {
    let path = data_dir.join(KEY_FILE);
    let keypair = Keypair::generate_ed25519();
    let bytes = encode(&keypair, &path)?;
    write_new_secret(&path, &bytes)?;
    Ok(keypair)
}

/// Writes `bytes` to a new file at `path` readable by the owner only (0600), synced;
/// refuses to overwrite.
pub(crate) fn write_new_secret(path: &Path, bytes: &[u8]) -> Result<(), NodeKeyError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Reads `data_dir/relay.key`.
pub fn load(data_dir: &Path) -> Result<Keypair, NodeKeyError> {
    let path = data_dir.join(KEY_FILE);
    let bytes = read_private(&path)?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|error| NodeKeyError::Invalid {
        path: path.display().to_string(),
        reason: error.to_string(),
    })
}

/// The key in libp2p's file encoding, in a buffer wiped on drop.
fn encode(keypair: &Keypair, path: &Path) -> Result<Zeroizing<Vec<u8>>, NodeKeyError> {
    keypair
        .to_protobuf_encoding()
        .map(Zeroizing::new)
        .map_err(|error| NodeKeyError::Invalid {
            path: path.display().to_string(),
            reason: error.to_string(),
        })
}

/// Reads a secret file that only its owner may read (else
/// [`NodeKeyError::InsecurePermissions`]), of at most [`MAX_KEY_FILE_BYTES`].
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, NodeKeyError> {
    let metadata = std::fs::metadata(path).map_err(io_error(path))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NodeKeyError::InsecurePermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    if metadata.len() > MAX_KEY_FILE_BYTES as u64 {
        return Err(too_large(path));
    }
    read_secret(path)
}

/// Reads at most [`MAX_KEY_FILE_BYTES`] into a buffer wiped on drop, allocated once with room
/// for one byte too many, so reading never reallocates and leaves a copy of the key behind.
fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, NodeKeyError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_BYTES + 1));
    File::open(path)
        .and_then(|file| {
            file.take(MAX_KEY_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(io_error(path))?;
    if bytes.len() > MAX_KEY_FILE_BYTES {
        return Err(too_large(path));
    }
    Ok(bytes)
}

fn too_large(path: &Path) -> NodeKeyError {
    NodeKeyError::Invalid {
        path: path.display().to_string(),
        reason: "file too large".into(),
    }
}

#[cfg(test)]
mod tests {
    use zeroize::ZeroizeOnDrop;

    use super::*;

    fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn key_bytes_live_only_in_buffers_wiped_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let keypair = create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let encoded = encode(&keypair, &path).unwrap();
        wiped_on_drop(&encoded);
        let read = read_secret(&path).unwrap();
        wiped_on_drop(&read);
        assert_eq!(*read, *encoded, "the file holds the encoded key");
        assert_eq!(
            read.capacity(),
            MAX_KEY_FILE_BYTES + 1,
            "reading never reallocated (no stray copy of the key)"
        );
    }

    #[test]
    fn keys_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let created = create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            load(dir.path()).unwrap().public(),
            created.public(),
            "the same key comes back"
        );
        assert!(create(dir.path()).is_err(), "init never overwrites a key");
    }

    #[test]
    fn a_readable_or_garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(NodeKeyError::InsecurePermissions { .. })
        ));
        std::fs::write(&path, b"garbage").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(NodeKeyError::Invalid { .. })
        ));
    }
}
