//! Plain file work for backups: copying with a checksum, fsync, owner-only modes, the target
//! directory check, safe relative names and UTC time stamps.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::BackupError;

/// Bytes read at once while copying or hashing a file.
const COPY_CHUNK: usize = 256 * 1024;

/// Size and SHA-256 (lower-case hex) of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digested {
    pub size: u64,
    pub sha256: String,
}

/// Makes `dir` (owner-only) if it does not exist; refuses one that holds anything.
pub(crate) fn empty_target(dir: &Path) -> Result<(), BackupError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => private_dir(dir),
        Err(error) => Err(BackupError::io(dir)(error)),
    }
}

/// Creates `dir` and its missing parents, the last one owner-only.
pub(crate) fn private_dir(dir: &Path) -> Result<(), BackupError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(BackupError::io(dir))
}

/// Copies `from` to a new file `to` (owner-only), hashing what it writes, and fsyncs it.
pub(crate) fn copy_file(from: &Path, to: &Path) -> Result<Digested, BackupError> {
    let mut source = File::open(from).map_err(BackupError::io(from))?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(BackupError::io(to))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        let read = source.read(&mut buf).map_err(BackupError::io(from))?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
        target
            .write_all(&buf[..read])
            .map_err(BackupError::io(to))?;
        size += read as u64;
    }
    target.sync_all().map_err(BackupError::io(to))?;
    Ok(Digested {
        size,
        sha256: hex(&hasher.finalize()),
    })
}

/// Size and SHA-256 of the file at `path`.
pub(crate) fn digest(path: &Path) -> Result<Digested, BackupError> {
    let mut file = File::open(path).map_err(BackupError::io(path))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        let read = file.read(&mut buf).map_err(BackupError::io(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
        size += read as u64;
    }
    Ok(Digested {
        size,
        sha256: hex(&hasher.finalize()),
    })
}

/// fsyncs a directory, so the names of the files just made in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(BackupError::io(dir))
}

/// Makes `path` readable by its owner only.
pub(crate) fn owner_only(path: &Path) -> Result<(), BackupError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(BackupError::io(path))
}

/// `name` as a path inside a backup, if it is one: relative, made of plain parts only (a
/// hostile manifest naming `/etc/passwd` or `../x` is refused).
pub(crate) fn inside(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    let plain = path
        .components()
        .all(|part| matches!(part, Component::Normal(_)));
    (plain && !name.is_empty()).then(|| path.to_path_buf())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// `ms` since the epoch as a compact UTC stamp for names, e.g. `20261130T145407Z`.
pub(crate) fn utc_stamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (counting in 400-year eras).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2026-11-30 14:54:07 UTC.
        assert_eq!(utc_stamp(1_796_050_447_000), "20261130T145407Z");
        // A leap day.
        assert_eq!(utc_stamp(951_782_400_000), "20000229T000000Z");
    }

    #[test]
    fn only_plain_relative_names_are_inside_a_backup() {
        assert!(inside("relay.redb").is_some());
        assert!(inside("blobs/abc").is_some());
        for hostile in ["", "/etc/passwd", "../relay.key", "blobs/../../x", "./a"] {
            assert!(inside(hostile).is_none(), "{hostile}");
        }
    }

    #[test]
    fn a_copy_carries_the_digest_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a");
        fs::write(&from, b"abc").unwrap();
        let copied = copy_file(&from, &dir.path().join("b")).unwrap();
        assert_eq!(copied.size, 3);
        assert_eq!(
            copied.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest(&dir.path().join("b")).unwrap(), copied);
    }
}
