//! The on-disk side of media blobs: whole blobs at `<data-dir>/blobs/<base58 id>`, uploads
//! in progress at `<data-dir>/blobs/partial/<user>-<id>`. Every function here blocks: call
//! it from `spawn_blocking`.
//!
//! A partial file becomes a blob only by fsync, rename and fsync of the directory, so after a
//! crash a blob file is either whole (and hash-checked) or absent.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use tidings_protocol::{BlobHasher, BlobId, UserId};

/// Bytes read at once when hashing what a partial file already holds.
const HASH_READ_BYTES: usize = 256 * 1024;

/// Where the blob files are.
#[derive(Debug, Clone)]
pub(crate) struct BlobFiles {
    root: PathBuf,
    partial: PathBuf,
}

/// A partial upload opened for appending, with the hash of what it holds.
pub(crate) struct Partial {
    pub file: File,
    pub hasher: BlobHasher,
    /// Bytes it holds.
    pub have: u64,
}

impl BlobFiles {
    /// The blob directories under `data_dir`, created if missing.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("blobs");
        let partial = root.join("partial");
        fs::create_dir_all(&partial)?;
        Ok(Self { root, partial })
    }

    /// Where the whole blob `id` lives.
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// Where `user`'s upload of `id` is assembled.
    pub fn partial_path(&self, user: &UserId, id: &BlobId) -> PathBuf {
        self.partial.join(format!("{user}-{id}"))
    }

    /// Opens (creating) `user`'s partial upload of `id`, keeping only its first `durable`
    /// bytes (what the metadata knows was synced), and hashes them.
    pub fn open_partial(&self, user: &UserId, id: &BlobId, durable: u64) -> io::Result<Partial> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.partial_path(user, id))?;
        let len = file.metadata()?.len();
        let have = len.min(durable);
        if len != have {
            file.set_len(have)?;
        }
        let mut hasher = BlobHasher::default();
        file.seek(SeekFrom::Start(0))?;
        let mut buf = vec![0u8; HASH_READ_BYTES];
        let mut left = have;
        while left > 0 {
            let want = usize::try_from(left.min(HASH_READ_BYTES as u64)).unwrap_or(HASH_READ_BYTES);
            file.read_exact(&mut buf[..want])?;
            hasher.update(&buf[..want]);
            left -= want as u64;
        }
        file.seek(SeekFrom::Start(have))?;
        Ok(Partial { file, hasher, have })
    }

    /// Makes a verified partial upload the blob `id`: fsync, rename, fsync the directory.
    pub fn publish(&self, partial: File, user: &UserId, id: &BlobId) -> io::Result<()> {
        partial.sync_all()?;
        drop(partial);
        fs::rename(self.partial_path(user, id), self.blob_path(id))?;
        sync_dir(&self.root)?;
        sync_dir(&self.partial)
    }

    /// Deletes a partial upload (gone already is fine).
    pub fn delete_partial(&self, user: &UserId, id: &BlobId) -> io::Result<()> {
        remove_if_present(&self.partial_path(user, id))
    }

    /// Deletes a whole blob (gone already is fine).
    pub fn delete_blob(&self, id: &BlobId) -> io::Result<()> {
        remove_if_present(&self.blob_path(id))
    }

    /// Opens blob `id` for reading from `offset`; its length. None if it is not there.
    pub fn open_blob(&self, id: &BlobId, offset: u64) -> io::Result<Option<(File, u64)>> {
        let mut file = match File::open(self.blob_path(id)) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(offset.min(len)))?;
        Ok(Some((file, len)))
    }

    /// The names of the files in the blob directory (whole blobs and strays).
    pub fn blob_names(&self) -> io::Result<Vec<String>> {
        file_names(&self.root)
    }

    /// The names of the files in the partial directory.
    pub fn partial_names(&self) -> io::Result<Vec<String>> {
        file_names(&self.partial)
    }

    /// Deletes the file `name` of the blob directory.
    pub fn delete_blob_named(&self, name: &str) -> io::Result<()> {
        remove_if_present(&self.root.join(name))
    }

    /// Deletes the file `name` of the partial directory.
    pub fn delete_partial_named(&self, name: &str) -> io::Result<()> {
        remove_if_present(&self.partial.join(name))
    }
}

/// Appends `bytes` to a partial upload and adds them to its hash.
pub(crate) fn append(partial: &mut Partial, bytes: &[u8]) -> io::Result<()> {
    partial.file.write_all(bytes)?;
    partial.hasher.update(bytes);
    partial.have += bytes.len() as u64;
    Ok(())
}

/// Reads the next up-to-`max` bytes of a blob being sent.
pub(crate) fn read_chunk(file: &mut File, max: usize) -> io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(max);
    Read::by_ref(file)
        .take(max as u64)
        .read_to_end(&mut chunk)?;
    Ok(chunk)
}

fn file_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file()
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
