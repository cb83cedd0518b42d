//! Files for media, read and written without blocking the runtime: natively tokio's files, and std's inside blocking jobs; in the browser OPFS files under relative paths (`opfs_files`).
//!
//! [`File`] streams (transfers); [`SyncFile`] is for blocking jobs (sealing, hashing), opened
//! here first because in the browser opening is asynchronous.

use std::{io, path::Path};

#[cfg(not(target_arch = "wasm32"))]
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[cfg(target_arch = "wasm32")]
use super::opfs_files::{self, Mode};

/// A file read and written synchronously, inside a blocking job: `std::fs::File` natively,
/// an OPFS file in the browser (both `Read + Write + Seek`, with `len`, `set_len` and
/// `sync_all`).
#[cfg(not(target_arch = "wasm32"))]
pub type SyncFile = std::fs::File;
#[cfg(target_arch = "wasm32")]
pub use super::opfs_files::SyncFile;

/// An open file.
pub struct File {
    #[cfg(not(target_arch = "wasm32"))]
    file: tokio::fs::File,
    #[cfg(target_arch = "wasm32")]
    file: SyncFile,
}

impl File {
    /// Opens `path` for reading.
    pub async fn open(path: &Path) -> io::Result<File> {
        #[cfg(not(target_arch = "wasm32"))]
        let file = tokio::fs::File::open(path).await?;
        #[cfg(target_arch = "wasm32")]
        let file = opfs_files::open(path, Mode::Read).await?;
        Ok(File { file })
    }

    /// Opens `path` for appending, creating it if missing.
    pub async fn append(path: &Path) -> io::Result<File> {
        #[cfg(not(target_arch = "wasm32"))]
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        #[cfg(target_arch = "wasm32")]
        let file = opfs_files::open(path, Mode::Append).await?;
        Ok(File { file })
    }

    /// The file's size.
    pub async fn len(&self) -> io::Result<u64> {
        #[cfg(not(target_arch = "wasm32"))]
        return Ok(self.file.metadata().await?.len());
        #[cfg(target_arch = "wasm32")]
        return self.file.len();
    }

    /// Cuts or extends the file to `size` bytes.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.file.set_len(size).await;
        #[cfg(target_arch = "wasm32")]
        return self.file.set_len(size);
    }

    /// Moves the read position to `offset`.
    pub async fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.file.seek(io::SeekFrom::Start(offset)).await?;
        #[cfg(target_arch = "wasm32")]
        io::Seek::seek(&mut self.file, io::SeekFrom::Start(offset))?;
        Ok(())
    }

    /// Fills `buf`; an error if the file ends first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.file.read_exact(buf).await?;
        #[cfg(target_arch = "wasm32")]
        io::Read::read_exact(&mut self.file, buf)?;
        Ok(())
    }

    /// Reads what comes next into `buf`; 0 at the end of the file.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.file.read(buf).await;
        #[cfg(target_arch = "wasm32")]
        return io::Read::read(&mut self.file, buf);
    }

    /// Writes all of `data` (and hands it to the system: [`File::flush`]).
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.file.write_all(data).await;
        #[cfg(target_arch = "wasm32")]
        return io::Write::write_all(&mut self.file, data);
    }

    /// Finishes the writes in flight.
    pub async fn flush(&mut self) -> io::Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.file.flush().await;
        #[cfg(target_arch = "wasm32")]
        return io::Write::flush(&mut self.file);
    }

    /// Makes what was written durable.
    pub async fn sync_all(&self) -> io::Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.file.sync_all().await;
        #[cfg(target_arch = "wasm32")]
        return self.file.sync_all();
    }
}

/// Opens `path` for reading, for a blocking job.
pub async fn open_sync(path: &Path) -> io::Result<SyncFile> {
    #[cfg(not(target_arch = "wasm32"))]
    return native(path, |path| std::fs::File::open(path)).await;
    #[cfg(target_arch = "wasm32")]
    return opfs_files::open(path, Mode::Read).await;
}

/// Creates (or empties) `path` for writing, for a blocking job.
pub async fn create_sync(path: &Path) -> io::Result<SyncFile> {
    #[cfg(not(target_arch = "wasm32"))]
    return native(path, |path| std::fs::File::create(path)).await;
    #[cfg(target_arch = "wasm32")]
    return opfs_files::open(path, Mode::Create).await;
}

/// Removes the file at `path`.
pub async fn remove_file(path: &Path) -> io::Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    return tokio::fs::remove_file(path).await;
    #[cfg(target_arch = "wasm32")]
    return opfs_files::remove_file(path).await;
}

/// Renames the file `from` to `to` durably: natively the directory is synced after, so the
/// new name survives a crash.
pub async fn rename(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    return native(to, {
        let from = from.to_path_buf();
        move |to| {
            std::fs::rename(&from, to)?;
            if let Some(dir) = to.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        }
    })
    .await;
    #[cfg(target_arch = "wasm32")]
    return opfs_files::rename(from, to).await;
}

/// Creates the directory `path` and those above it.
pub async fn create_dir_all(path: &Path) -> io::Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    return tokio::fs::create_dir_all(path).await;
    #[cfg(target_arch = "wasm32")]
    return opfs_files::create_dir_all(path).await;
}

/// The size of the file at `path`, None if there is no file there.
pub async fn size_of(path: &Path) -> io::Result<Option<u64>> {
    #[cfg(not(target_arch = "wasm32"))]
    return match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    };
    #[cfg(target_arch = "wasm32")]
    return opfs_files::size_of(path).await;
}

/// Whether `path` is a directory.
pub async fn is_dir(path: &Path) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    return tokio::fs::metadata(path)
        .await
        .is_ok_and(|meta| meta.is_dir());
    #[cfg(target_arch = "wasm32")]
    return opfs_files::is_dir(path).await;
}

/// Runs `work` on `path` on the blocking pool.
#[cfg(not(target_arch = "wasm32"))]
async fn native<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = path.to_path_buf();
    super::spawn_blocking(move || work(&path))
        .await
        .map_err(|_| io::Error::other("a file job ended without a result"))?
}
