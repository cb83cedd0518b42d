//! A storage backend that fails on command, to prove that failed commits lose nothing.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use redb::{BackendError, StorageBackend, backends::FileBackend};
use tidings_protocol::store::StoreError;

use super::{Store, StoreConfig, WriterHandle};
use crate::mailbox::Hub;

impl Store {
    /// Opens the store at `path`: over a [`FaultyBackend`] driven by `switch` if one is
    /// given, as [`Store::open`] does otherwise.
    pub fn open_faulty(
        path: &Path,
        switch: Option<FaultSwitch>,
        config: StoreConfig,
        hub: Arc<Hub>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        match switch {
            Some(switch) => {
                let path = path.to_path_buf();
                let backend = move || FaultyBackend::open(&path, switch.clone());
                Store::open_with_backend(backend, config, hub)
            }
            None => Store::open(path, config, hub),
        }
    }
}

/// Shared switch that makes a [`FaultyBackend`] fail every write and sync while it is on.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<AtomicBool>);

impl FaultSwitch {
    /// Makes writes and syncs fail from now on (like a full or failing disk).
    pub fn fail(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Lets writes and syncs succeed again.
    pub fn heal(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    fn failing(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A file backend whose writes, length changes and syncs fail while its switch is on.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    switch: FaultSwitch,
}

impl FaultyBackend {
    /// Wraps the file at `path` (created if missing).
    pub fn open(path: &Path, switch: FaultSwitch) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let inner = FileBackend::new(file).map_err(std::io::Error::other)?;
        Ok(Self { inner, switch })
    }

    fn check(&self) -> std::io::Result<()> {
        if self.switch.failing() {
            return Err(std::io::Error::other(
                "injected fault: no space left on device",
            ));
        }
        Ok(())
    }
}

type Span = std::ops::Bound<u64>;

impl StorageBackend for FaultyBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Span, end: Span) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Span, end: Span) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Span, end: Span) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Span, end: Span) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Span, end: Span) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Span, end: Span) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
