//! [`OpfsFile`]: a file in the browser's Origin Private File System, read and written synchronously (a Dedicated Worker's `FileSystemSyncAccessHandle`), and redb's storage backend on it.

use std::io;

use redb::StorageBackend;
use send_wrapper::SendWrapper;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemReadWriteOptions, FileSystemRemoveOptions,
    FileSystemSyncAccessHandle, WorkerGlobalScope,
};

/// Largest offset or size used in an OPFS file: the handle takes offsets as JavaScript numbers,
/// exact only up to 2^53.
pub const MAX_OPFS_FILE_BYTES: u64 = 1 << 53;

/// Largest file [`OpfsFile::read_all`] reads into memory.
pub const MAX_READ_ALL_BYTES: u64 = 1024 * 1024;

/// Why OPFS could not be reached or a file in it not opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpfsError {
    /// Not running in a worker, or the browser offers no OPFS (a private window may not).
    #[error("no Origin Private File System here: {0}")]
    Unavailable(String),
    /// The browser refused an operation (a file another tab holds open, a quota, a bad name).
    #[error("{what}: {reason}")]
    Refused {
        /// What was asked.
        what: String,
        /// The browser's answer.
        reason: String,
    },
}

/// A file in OPFS, held open for synchronous access, which is exclusive: while one handle is
/// open no other tab or worker can open the file (so two tabs never write one database).
/// Closed on [`OpfsFile::close`] or when dropped.
///
/// The handle is a JavaScript object bound to this worker's thread; the device runs in one
/// Dedicated Worker, so it never leaves it ([`SendWrapper`] makes redb's `Send + Sync` bound
/// hold).
pub struct OpfsFile {
    handle: SendWrapper<FileSystemSyncAccessHandle>,
    name: String,
}

impl std::fmt::Debug for OpfsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpfsFile")
            .field("name", &self.name)
            .finish()
    }
}

impl OpfsFile {
    /// Opens `name` in the OPFS directory `dir` (both created if missing) for synchronous
    /// access. Fails if another tab or worker holds it open.
    pub async fn open(dir: &str, name: &str) -> Result<OpfsFile, OpfsError> {
        let directory = directory(dir).await?;
        let options = FileSystemGetFileOptions::new();
        options.set_create(true);
        let what = || format!("opening {dir}/{name}");
        let file: FileSystemFileHandle =
            resolve(directory.get_file_handle_with_options(name, &options), what).await?;
        let handle: FileSystemSyncAccessHandle =
            resolve(file.create_sync_access_handle(), what).await?;
        Ok(OpfsFile {
            handle: SendWrapper::new(handle),
            name: format!("{dir}/{name}"),
        })
    }

    /// Opens the file `handle` (in a directory the caller walked to) for synchronous access;
    /// `name` names it in errors.
    pub(crate) async fn open_handle(
        handle: &FileSystemFileHandle,
        name: String,
    ) -> Result<OpfsFile, OpfsError> {
        let what = || format!("opening {name}");
        let handle: FileSystemSyncAccessHandle =
            resolve(handle.create_sync_access_handle(), what).await?;
        Ok(OpfsFile {
            handle: SendWrapper::new(handle),
            name,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        let size = self
            .handle
            .get_size()
            .map_err(|error| failed("size", &error))?;
        Ok(size as u64)
    }

    /// Fills `out` from `offset`; an error if the file ends first.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = checked_end(offset, out.len())?;
        let mut done = 0usize;
        while done < out.len() {
            let options = FileSystemReadWriteOptions::new();
            options.set_at((offset + done as u64) as f64);
            let read = self
                .handle
                .read_with_u8_array_and_options(&mut out[done..], &options)
                .map_err(|error| failed("read", &error))? as usize;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: read to {end} past its end", self.name),
                ));
            }
            done += read;
        }
        Ok(())
    }

    /// Writes `data` at `offset` (the file grows, zero-filled, if needed).
    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        checked_end(offset, data.len())?;
        let mut done = 0usize;
        while done < data.len() {
            let options = FileSystemReadWriteOptions::new();
            options.set_at((offset + done as u64) as f64);
            let written = self
                .handle
                .write_with_u8_array_and_options(&data[done..], &options)
                .map_err(|error| failed("write", &error))? as usize;
            if written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("{}: the browser wrote nothing", self.name),
                ));
            }
            done += written;
        }
        Ok(())
    }

    /// Cuts or extends (with zeros) the file to `size` bytes.
    pub fn truncate(&self, size: u64) -> io::Result<()> {
        checked_end(size, 0)?;
        self.handle
            .truncate_with_f64(size as f64)
            .map_err(|error| failed("truncate", &error))
    }

    /// Makes what was written durable.
    pub fn flush(&self) -> io::Result<()> {
        self.handle.flush().map_err(|error| failed("flush", &error))
    }

    /// The whole file (at most [`MAX_READ_ALL_BYTES`]).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let size = self.size()?;
        if size > MAX_READ_ALL_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {size} bytes, more than {MAX_READ_ALL_BYTES}",
                    self.name
                ),
            ));
        }
        let mut bytes = vec![0; size as usize];
        self.read_at(0, &mut bytes)?;
        Ok(bytes)
    }

    /// Replaces the whole content with `bytes`, durably.
    pub fn replace(&self, bytes: &[u8]) -> io::Result<()> {
        self.truncate(0)?;
        self.write_at(0, bytes)?;
        self.flush()
    }

    /// Releases the handle (and the file's lock). Later calls fail.
    pub fn close(&self) {
        self.handle.close();
    }
}

impl Drop for OpfsFile {
    fn drop(&mut self) {
        // Closing twice is harmless; a handle left open would lock the file until the
        // worker ends.
        if self.handle.valid() {
            self.handle.close();
        }
    }
}

impl StorageBackend for OpfsFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.size()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.read_at(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.truncate(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.flush()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.write_at(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        OpfsFile::close(self);
        Ok(())
    }
}

/// Whether `name` exists in the OPFS directory `dir` (creating neither).
pub async fn exists(dir: &str, name: &str) -> Result<bool, OpfsError> {
    let root = root().await?;
    let Ok(directory) = JsFuture::from(root.get_directory_handle(dir)).await else {
        return Ok(false);
    };
    let directory: FileSystemDirectoryHandle = directory.unchecked_into();
    Ok(JsFuture::from(directory.get_file_handle(name))
        .await
        .is_ok())
}

/// Removes the OPFS directory `dir` and everything in it (nothing if it does not exist).
pub async fn remove_dir(dir: &str) -> Result<(), OpfsError> {
    let root = root().await?;
    let options = FileSystemRemoveOptions::new();
    options.set_recursive(true);
    match JsFuture::from(root.remove_entry_with_options(dir, &options)).await {
        Ok(_) => Ok(()),
        Err(error) if js_name(&error).as_deref() == Some("NotFoundError") => Ok(()),
        Err(error) => Err(OpfsError::Refused {
            what: format!("removing {dir}"),
            reason: js_text(&error),
        }),
    }
}

/// The OPFS root of this origin, as a worker sees it.
pub(crate) async fn root() -> Result<FileSystemDirectoryHandle, OpfsError> {
    let scope: WorkerGlobalScope = js_sys::global()
        .dyn_into()
        .map_err(|_| OpfsError::Unavailable("not running in a worker".into()))?;
    JsFuture::from(scope.navigator().storage().get_directory())
        .await
        .map(JsCast::unchecked_into)
        .map_err(|error| OpfsError::Unavailable(js_text(&error)))
}

async fn directory(dir: &str) -> Result<FileSystemDirectoryHandle, OpfsError> {
    let root = root().await?;
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(true);
    resolve(
        root.get_directory_handle_with_options(dir, &options),
        || format!("opening directory {dir}"),
    )
    .await
}

async fn resolve<T: JsCast>(
    promise: js_sys::Promise,
    what: impl Fn() -> String,
) -> Result<T, OpfsError> {
    let value = JsFuture::from(promise)
        .await
        .map_err(|error| OpfsError::Refused {
            what: what(),
            reason: js_text(&error),
        })?;
    value.dyn_into().map_err(|value| OpfsError::Refused {
        what: what(),
        reason: format!("unexpected answer {value:?}"),
    })
}

/// `offset + len`, if within [`MAX_OPFS_FILE_BYTES`].
fn checked_end(offset: u64, len: usize) -> io::Result<u64> {
    offset
        .checked_add(len as u64)
        .filter(|end| *end <= MAX_OPFS_FILE_BYTES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("offset {offset} + {len} bytes is past {MAX_OPFS_FILE_BYTES}"),
            )
        })
}

fn failed(what: &str, error: &JsValue) -> io::Error {
    let kind = match js_name(error).as_deref() {
        Some("QuotaExceededError") => io::ErrorKind::StorageFull,
        Some("InvalidStateError") => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("OPFS {what}: {}", js_text(error)))
}

/// The `name` of a DOMException or Error.
pub(crate) fn js_name(error: &JsValue) -> Option<String> {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.name()))
}

/// A JavaScript error as text.
pub(crate) fn js_text(error: &JsValue) -> String {
    match error.dyn_ref::<js_sys::Error>() {
        Some(error) => format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        ),
        None => error.as_string().unwrap_or_else(|| format!("{error:?}")),
    }
}
