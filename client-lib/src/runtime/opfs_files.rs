//! Media files in the browser: a relative path names a file in the Origin Private File System (one OPFS directory per component, the device's own first), read and written through a synchronous access handle.

use std::{
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Component, Path},
};

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions};

use crate::browser::opfs::{self, OpfsError, OpfsFile};

/// Most directories a media path may nest (the device dir, `media`, `incoming`, ...).
const MAX_PATH_DEPTH: usize = 16;

/// A file in OPFS with a read and write position: what `std::fs::File` is natively.
/// Its synchronous access handle locks the file until this is dropped.
#[derive(Debug)]
pub struct SyncFile {
    file: OpfsFile,
    position: u64,
}

impl SyncFile {
    /// The file's size.
    pub fn len(&self) -> io::Result<u64> {
        self.file.size()
    }

    /// Cuts or extends the file to `size` bytes.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.file.truncate(size)
    }

    /// Makes what was written durable.
    pub fn sync_all(&self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Read for SyncFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.file.size()?.saturating_sub(self.position);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        self.file.read_at(self.position, &mut buf[..want])?;
        self.position += want as u64;
        Ok(want)
    }
}

impl Write for SyncFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_at(self.position, buf)?;
        self.position += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Each write reached the handle already; durability is `sync_all`'s.
        Ok(())
    }
}

impl Seek for SyncFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let base = match to {
            SeekFrom::Start(offset) => {
                self.position = offset;
                return Ok(offset);
            }
            SeekFrom::End(delta) => (self.file.size()?, delta),
            SeekFrom::Current(delta) => (self.position, delta),
        };
        self.position = base
            .0
            .checked_add_signed(base.1)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.position)
    }
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reading from the start; the file must exist.
    Read,
    /// Writing from the start, emptied or created.
    Create,
    /// Writing at the end, created if missing.
    Append,
}

/// Opens the file at `path`.
pub async fn open(path: &Path, mode: Mode) -> io::Result<SyncFile> {
    let (dirs, name) = split(path)?;
    let directory = walk(&dirs, mode != Mode::Read).await?;
    let handle = file_handle(&directory, &name, mode != Mode::Read, path).await?;
    let file = OpfsFile::open_handle(&handle, path.display().to_string())
        .await
        .map_err(io_error)?;
    let position = match mode {
        Mode::Read => 0,
        Mode::Create => {
            file.truncate(0)?;
            0
        }
        Mode::Append => file.size()?,
    };
    Ok(SyncFile { file, position })
}

/// Removes the file at `path` (`NotFound` if it is not there).
pub async fn remove_file(path: &Path) -> io::Result<()> {
    let (dirs, name) = split(path)?;
    let directory = walk(&dirs, false).await?;
    JsFuture::from(directory.remove_entry(&name))
        .await
        .map(|_| ())
        .map_err(|error| js_io(error, path))
}

/// Renames the file `from` to `to` (replacing it), with OPFS's `move()`.
pub async fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let (from_dirs, from_name) = split(from)?;
    let (to_dirs, to_name) = split(to)?;
    let handle = file_handle(&walk(&from_dirs, false).await?, &from_name, false, from).await?;
    let target = walk(&to_dirs, true).await?;
    match remove_file(to).await {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let move_to = js_sys::Reflect::get(&handle, &JsValue::from_str("move"))
        .ok()
        .and_then(|function| function.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no OPFS move() here"))?;
    let promise = move_to
        .call2(&handle, &target, &JsValue::from_str(&to_name))
        .map_err(|error| js_io(error, from))?;
    JsFuture::from(js_sys::Promise::from(promise))
        .await
        .map(|_| ())
        .map_err(|error| js_io(error, from))
}

/// Creates the directory `path` and those above it.
pub async fn create_dir_all(path: &Path) -> io::Result<()> {
    walk(&components(path)?, true).await.map(|_| ())
}

/// The size of the file at `path`; None if there is none.
pub async fn size_of(path: &Path) -> io::Result<Option<u64>> {
    let (dirs, name) = split(path)?;
    let Ok(directory) = walk(&dirs, false).await else {
        return Ok(None);
    };
    let Ok(handle) = file_handle(&directory, &name, false, path).await else {
        return Ok(None);
    };
    let file = JsFuture::from(handle.get_file())
        .await
        .map_err(|error| js_io(error, path))?;
    let size = js_sys::Reflect::get(&file, &JsValue::from_str("size"))
        .ok()
        .and_then(|size| size.as_f64())
        .ok_or_else(|| io::Error::other(format!("{}: no size", path.display())))?;
    Ok(Some(size as u64))
}

/// Whether `path` is a directory.
pub async fn is_dir(path: &Path) -> bool {
    match components(path) {
        Ok(parts) => walk(&parts, false).await.is_ok(),
        Err(_) => false,
    }
}

/// The directory names and the file name of `path`.
fn split(path: &Path) -> io::Result<(Vec<String>, String)> {
    let mut parts = components(path)?;
    let name = parts
        .pop()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty path"))?;
    Ok((parts, name))
}

/// The names along a relative path (`..`, roots and prefixes are refused).
fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().to_string()),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: not a relative path in OPFS", path.display()),
                ));
            }
        }
    }
    if parts.len() > MAX_PATH_DEPTH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: nested too deep", path.display()),
        ));
    }
    Ok(parts)
}

/// The directory down `dirs` from the OPFS root, created on the way if `create`.
async fn walk(dirs: &[String], create: bool) -> io::Result<FileSystemDirectoryHandle> {
    let mut directory = opfs::root().await.map_err(io_error)?;
    for name in dirs {
        let options = FileSystemGetDirectoryOptions::new();
        options.set_create(create);
        let next = JsFuture::from(directory.get_directory_handle_with_options(name, &options))
            .await
            .map_err(|error| js_io(error, Path::new(name)))?;
        directory = next.unchecked_into();
    }
    Ok(directory)
}

async fn file_handle(
    directory: &FileSystemDirectoryHandle,
    name: &str,
    create: bool,
    path: &Path,
) -> io::Result<FileSystemFileHandle> {
    let options = web_sys::FileSystemGetFileOptions::new();
    options.set_create(create);
    JsFuture::from(directory.get_file_handle_with_options(name, &options))
        .await
        .map(JsCast::unchecked_into)
        .map_err(|error| js_io(error, path))
}

fn io_error(error: OpfsError) -> io::Error {
    io::Error::other(error.to_string())
}

/// A browser error as an I/O error (`NotFound` for a missing entry).
fn js_io(error: JsValue, path: &Path) -> io::Error {
    let kind = match opfs::js_name(&error).as_deref() {
        Some("NotFoundError") => io::ErrorKind::NotFound,
        Some("QuotaExceededError") => io::ErrorKind::StorageFull,
        Some("TypeMismatchError") => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(
        kind,
        format!("{}: {}", path.display(), opfs::js_text(&error)),
    )
}
