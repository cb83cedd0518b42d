//! Owner-only files: atomic replacement with mode `0600`, and bounded reads that refuse group- or world-accessible files.
//!
//! Unix only: elsewhere (the browser build) these refuse with `Unsupported`, since there is
//! no owner-only mode to check or set; a browser device keeps its keys in browser storage.

#[cfg(unix)]
use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
};
use std::{io, path::Path};

#[cfg(unix)]
use tidings_protocol::DecodeError;
use zeroize::Zeroizing;

use super::KeyFileError;
#[cfg(unix)]
use super::MAX_KEY_FILE_BYTES;

/// Opens `path`, refuses it unless only its owner may access it, and reads at most
/// [`MAX_KEY_FILE_BYTES`].
#[cfg(unix)]
pub(super) fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let file = File::open(path)?;
    // Checked on the open descriptor, so the file cannot be swapped after the check.
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file").into());
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::InsecurePermissions { mode });
    }
    // Room for one byte too many, so an oversized file is detected without reallocating
    // (which would leave copies of the secrets behind).
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_BYTES + 1));
    file.take(MAX_KEY_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_KEY_FILE_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_KEY_FILE_BYTES,
        }
        .into());
    }
    Ok(bytes)
}

/// Replaces `path` with `bytes`: a new `0600` file in the same directory, synced, renamed over
/// the old one, then the directory synced, so a crash leaves either the old or the new file.
#[cfg(unix)]
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "key file path has no file name",
        )
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = dir.join(format!(
        ".{}.{:016x}.tmp",
        name.to_string_lossy(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: after a successful rename the temporary name no longer exists.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Without owner-only file modes no key file is read.
#[cfg(not(unix))]
pub(super) fn read(_path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    Err(unsupported().into())
}

/// Without owner-only file modes no key file is written.
#[cfg(not(unix))]
pub(super) fn write_atomically(_path: &Path, _bytes: &[u8]) -> io::Result<()> {
    Err(unsupported())
}

#[cfg(not(unix))]
fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "key files need owner-only file modes (unix)",
    )
}
