//! Files for media in transit, read and written without blocking the runtime: tokio's files natively; std's in the browser, which has no file system there (every call is an `Unsupported` error until a browser blob store is plugged in).

use std::{io, path::Path};

#[cfg(not(target_arch = "wasm32"))]
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// An open file.
pub struct File {
    #[cfg(not(target_arch = "wasm32"))]
    file: tokio::fs::File,
    #[cfg(target_arch = "wasm32")]
    file: std::fs::File,
}

impl File {
    /// Opens `path` for reading.
    pub async fn open(path: &Path) -> io::Result<File> {
        #[cfg(not(target_arch = "wasm32"))]
        let file = tokio::fs::File::open(path).await?;
        #[cfg(target_arch = "wasm32")]
        let file = std::fs::File::open(path)?;
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
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(File { file })
    }

    /// The file's size.
    pub async fn len(&self) -> io::Result<u64> {
        #[cfg(not(target_arch = "wasm32"))]
        return Ok(self.file.metadata().await?.len());
        #[cfg(target_arch = "wasm32")]
        return Ok(self.file.metadata()?.len());
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

/// Removes the file at `path`.
pub async fn remove_file(path: &Path) -> io::Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    return tokio::fs::remove_file(path).await;
    #[cfg(target_arch = "wasm32")]
    return std::fs::remove_file(path);
}
