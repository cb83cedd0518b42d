//! Files on disk sealed and opened with `tidings_keys::media` (blocking: call from the
//! blocking pool): a sealed or opened file appears under its name only once it is whole.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use tidings_keys::media::{MediaKey, Sealed, open, seal};
use tidings_protocol::{BlobHasher, BlobId};

use super::MediaError;

/// Bytes read at a time while hashing a file.
const HASH_BUFFER: usize = 64 * 1024;

/// The SHA-256 and size of a file's plaintext: what finds an earlier upload of it.
pub fn plain_digest(path: &Path) -> Result<([u8; 32], u64), MediaError> {
    let mut hasher = Sha256::new();
    let size = read_all(path, |piece| hasher.update(piece))?;
    Ok((hasher.finalize().into(), size))
}

/// The blob id of a file of ciphertext (SHA-256 of all of it).
pub fn blob_id_of(path: &Path) -> Result<BlobId, MediaError> {
    let mut hasher = BlobHasher::default();
    read_all(path, |piece| hasher.update(piece))?;
    Ok(hasher.finish())
}

fn read_all(path: &Path, mut take: impl FnMut(&[u8])) -> Result<u64, MediaError> {
    let mut file = File::open(path).map_err(MediaError::io(path))?;
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut size = 0u64;
    loop {
        let read = match file.read(&mut buf) {
            Ok(0) => return Ok(size),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(MediaError::io(path)(error)),
        };
        take(&buf[..read]);
        size += read as u64;
    }
}

/// The temporary name a file is written under before it is renamed to `path`.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tidings-partial"))
}

/// Seals `input` under `key` into `output` (written under a temporary name, synced, then
/// renamed).
pub fn seal_file(key: &MediaKey, input: &Path, output: &Path) -> Result<Sealed, MediaError> {
    let temp = temp_name(output);
    let sealed = (|| {
        let mut reader = BufReader::new(File::open(input).map_err(MediaError::io(input))?);
        let file = File::create(&temp).map_err(MediaError::io(&temp))?;
        let mut writer = BufWriter::new(file);
        let sealed = seal(key, &mut reader, &mut writer)?;
        finish(writer, &temp)?;
        Ok(sealed)
    })();
    match sealed {
        Ok(sealed) => {
            publish(&temp, output)?;
            Ok(sealed)
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            Err(error)
        }
    }
}

/// Opens the ciphertext in `input` under `key` into `output`: the plaintext appears under
/// `output` only once every chunk opened; on an error nothing is left behind.
pub fn open_file(key: &MediaKey, input: &Path, output: &Path) -> Result<u64, MediaError> {
    let temp = temp_name(output);
    let opened = (|| {
        let mut reader = BufReader::new(File::open(input).map_err(MediaError::io(input))?);
        let file = File::create(&temp).map_err(MediaError::io(&temp))?;
        let mut writer = BufWriter::new(file);
        let size = open(key, &mut reader, &mut writer)?;
        finish(writer, &temp)?;
        Ok(size)
    })();
    match opened {
        Ok(size) => {
            publish(&temp, output)?;
            Ok(size)
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            Err(error)
        }
    }
}

fn finish(mut writer: BufWriter<File>, path: &Path) -> Result<(), MediaError> {
    writer.flush().map_err(MediaError::io(path))?;
    let file = writer
        .into_inner()
        .map_err(|error| MediaError::io(path)(error.into_error()))?;
    file.sync_all().map_err(MediaError::io(path))
}

/// Renames `temp` to `path` and syncs the directory, so the name survives a crash.
fn publish(temp: &Path, path: &Path) -> Result<(), MediaError> {
    std::fs::rename(temp, path).map_err(MediaError::io(path))?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(MediaError::io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sealed_and_opened_comes_back_and_a_flipped_byte_leaves_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.bin");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&plain, &bytes).unwrap();
        let key = MediaKey::generate();
        let sealed_path = dir.path().join("sealed.blob");
        let sealed = seal_file(&key, &plain, &sealed_path).unwrap();
        assert_eq!(blob_id_of(&sealed_path).unwrap(), sealed.blob);
        assert_eq!(plain_digest(&plain).unwrap().1, bytes.len() as u64);
        assert!(!temp_name(&sealed_path).exists());

        let out = dir.path().join("out.bin");
        assert_eq!(
            open_file(&key, &sealed_path, &out).unwrap(),
            bytes.len() as u64
        );
        assert_eq!(std::fs::read(&out).unwrap(), bytes);

        let mut tampered = std::fs::read(&sealed_path).unwrap();
        tampered[70_000] ^= 1;
        std::fs::write(&sealed_path, tampered).unwrap();
        let refused = dir.path().join("refused.bin");
        assert!(matches!(
            open_file(&key, &sealed_path, &refused),
            Err(MediaError::Crypt(_))
        ));
        assert!(!refused.exists());
        assert!(!temp_name(&refused).exists());
    }
}
