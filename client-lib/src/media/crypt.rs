//! Files sealed and opened with `tidings_keys::media` through the file layer
//! (`runtime::files`; the work itself in a blocking job): a sealed or opened file appears
//! under its name only once it is whole.

use std::{
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use tidings_keys::media::{MediaKey, Sealed, open, seal};
use tidings_protocol::{BlobHasher, BlobId};

use super::MediaError;
use crate::runtime::files::{self, SyncFile};

/// Bytes read at a time while hashing a file.
const HASH_BUFFER: usize = 64 * 1024;

/// The SHA-256 and size of a file's plaintext: what finds an earlier upload of it.
pub async fn plain_digest(path: &Path) -> Result<([u8; 32], u64), MediaError> {
    let file = files::open_sync(path).await.map_err(MediaError::io(path))?;
    blocking(path, move |path| {
        let mut hasher = Sha256::new();
        let size = read_all(file, path, |piece| hasher.update(piece))?;
        Ok((hasher.finalize().into(), size))
    })
    .await
}

/// The blob id of a file of ciphertext (SHA-256 of all of it).
pub async fn blob_id_of(path: &Path) -> Result<BlobId, MediaError> {
    let file = files::open_sync(path).await.map_err(MediaError::io(path))?;
    blocking(path, move |path| {
        let mut hasher = BlobHasher::default();
        read_all(file, path, |piece| hasher.update(piece))?;
        Ok(hasher.finish())
    })
    .await
}

fn read_all(
    mut file: SyncFile,
    path: &Path,
    mut take: impl FnMut(&[u8]),
) -> Result<u64, MediaError> {
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

/// Runs `work` in a blocking job (the blocking pool natively, inline in the browser's worker).
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce(&Path) -> Result<T, MediaError> + Send + 'static,
) -> Result<T, MediaError> {
    let owned = path.to_path_buf();
    crate::runtime::spawn_blocking(move || work(&owned))
        .await
        .map_err(|_| {
            MediaError::io(path)(std::io::Error::other("the file job ended without a result"))
        })?
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
pub async fn seal_file(key: &MediaKey, input: &Path, output: &Path) -> Result<Sealed, MediaError> {
    let key = key.clone();
    through_temp(input, output, move |reader, writer| {
        Ok(seal(&key, reader, writer)?)
    })
    .await
}

/// Opens the ciphertext in `input` under `key` into `output`: the plaintext appears under
/// `output` only once every chunk opened; on an error nothing is left behind.
pub async fn open_file(key: &MediaKey, input: &Path, output: &Path) -> Result<u64, MediaError> {
    let key = key.clone();
    through_temp(input, output, move |reader, writer| {
        Ok(open(&key, reader, writer)?)
    })
    .await
}

/// Runs `work` from `input` into a temporary file, synced, then renamed to `output`; on an
/// error the temporary file is removed.
async fn through_temp<T: Send + 'static>(
    input: &Path,
    output: &Path,
    work: impl FnOnce(&mut BufReader<SyncFile>, &mut BufWriter<SyncFile>) -> Result<T, MediaError>
    + Send
    + 'static,
) -> Result<T, MediaError> {
    let temp = temp_name(output);
    let done = async {
        let reader = files::open_sync(input)
            .await
            .map_err(MediaError::io(input))?;
        let writer = files::create_sync(&temp)
            .await
            .map_err(MediaError::io(&temp))?;
        // Both files are closed when the job ends, before the rename (a browser file stays
        // locked while open).
        blocking(&temp, move |temp| {
            let mut reader = BufReader::new(reader);
            let mut writer = BufWriter::new(writer);
            let done = work(&mut reader, &mut writer)?;
            finish(writer, temp)?;
            Ok(done)
        })
        .await
    }
    .await;
    match done {
        Ok(done) => {
            files::rename(&temp, output)
                .await
                .map_err(MediaError::io(output))?;
            Ok(done)
        }
        Err(error) => {
            let _ = files::remove_file(&temp).await;
            Err(error)
        }
    }
}

fn finish(mut writer: BufWriter<SyncFile>, path: &Path) -> Result<(), MediaError> {
    writer.flush().map_err(MediaError::io(path))?;
    let file = writer
        .into_inner()
        .map_err(|error| MediaError::io(path)(error.into_error()))?;
    file.sync_all().map_err(MediaError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_sealed_and_opened_comes_back_and_a_flipped_byte_leaves_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.bin");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&plain, &bytes).unwrap();
        let key = MediaKey::generate();
        let sealed_path = dir.path().join("sealed.blob");
        let sealed = seal_file(&key, &plain, &sealed_path).await.unwrap();
        assert_eq!(blob_id_of(&sealed_path).await.unwrap(), sealed.blob);
        assert_eq!(plain_digest(&plain).await.unwrap().1, bytes.len() as u64);
        assert!(!temp_name(&sealed_path).exists());

        let out = dir.path().join("out.bin");
        assert_eq!(
            open_file(&key, &sealed_path, &out).await.unwrap(),
            bytes.len() as u64
        );
        assert_eq!(std::fs::read(&out).unwrap(), bytes);

        let mut tampered = std::fs::read(&sealed_path).unwrap();
        tampered[70_000] ^= 1;
        std::fs::write(&sealed_path, tampered).unwrap();
        let refused = dir.path().join("refused.bin");
        assert!(matches!(
            open_file(&key, &sealed_path, &refused).await,
            Err(MediaError::Crypt(_))
        ));
        assert!(!refused.exists());
        assert!(!temp_name(&refused).exists());
    }
}
