//! Random files for media workloads, and SHA-256 of files read in chunks (blocking).

use std::{
    io::{Read, Write},
    path::Path,
};

use anyhow::Context;
use rand::Rng;
use tidings_protocol::{BlobId, blob::BlobHasher};

/// Bytes written or read per call.
const CHUNK: usize = 1 << 20;

/// Writes `bytes` bytes from `rng` to `path` (fsynced); returns their SHA-256 (as a
/// [`BlobId`], which is one).
pub fn write_random(path: &Path, bytes: u64, rng: &mut impl Rng) -> anyhow::Result<BlobId> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut hasher = BlobHasher::default();
    let mut chunk = vec![0u8; CHUNK];
    let mut written = 0;
    while written < bytes {
        let take = usize::try_from(bytes - written).unwrap_or(CHUNK).min(CHUNK);
        rng.fill_bytes(&mut chunk[..take]);
        out.write_all(&chunk[..take])
            .with_context(|| format!("writing {}", path.display()))?;
        hasher.update(&chunk[..take]);
        written += take as u64;
    }
    out.into_inner()
        .map_err(|error| error.into_error())
        .and_then(|file| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(hasher.finish())
}

/// SHA-256 of the file at `path`.
pub fn digest_of(path: &Path) -> anyhow::Result<BlobId> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = BlobHasher::default();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let read = file
            .read(&mut chunk)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&chunk[..read]);
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn a_written_file_hashes_to_what_writing_it_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let size = 3 * CHUNK as u64 + 17;
        let written = write_random(&path, size, &mut StdRng::seed_from_u64(9)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert_eq!(digest_of(&path).unwrap(), written);
        assert_eq!(BlobId::of(&std::fs::read(&path).unwrap()), written);
        let other = write_random(&path, size, &mut StdRng::seed_from_u64(10)).unwrap();
        assert_ne!(other, written, "another seed gives other bytes");
    }
}
