//! The open database, shared by readers and the writer, reopened after a failed commit.
//!
//! redb refuses every write after a commit failed on I/O (a full or failing disk) until the
//! database is closed and opened again, which repairs it back to the last durable commit.
//! The writer does that here, so a relay whose disk recovers goes on without a restart.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use redb::Database;

use tidings_protocol::store::StoreError;

/// Opens (creating if needed) the database; called again to reopen it.
pub type Opener = Box<dyn Fn() -> Result<Database, StoreError> + Send + Sync>;

/// How long a reopen waits for reads in progress to finish.
const READERS_TIMEOUT: Duration = Duration::from_secs(10);

/// The database, or nothing while a reopen failed.
pub struct DbSlot {
    db: RwLock<Option<Arc<Database>>>,
    opener: Opener,
}

impl DbSlot {
    /// Opens the database with `opener`.
    pub fn open(opener: Opener) -> Result<DbSlot, StoreError> {
        let db = opener()?;
        Ok(DbSlot {
            db: RwLock::new(Some(Arc::new(db))),
            opener,
        })
    }

    /// The database, unless it is closed after a reopen failed.
    pub fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
            .ok_or(StoreError::Unavailable {
                reason: "the database is closed after a disk failure",
            })
    }

    /// Closes the database (once reads in progress are done; new ones wait) and opens it
    /// again. Blocking: only the writer thread calls it.
    pub fn reopen(&self) -> Result<Arc<Database>, StoreError> {
        let mut slot = self.db.write().unwrap_or_else(|poison| poison.into_inner());
        if let Some(mut db) = slot.take() {
            let deadline = Instant::now() + READERS_TIMEOUT;
            let owned = loop {
                match Arc::try_unwrap(db) {
                    Ok(owned) => break owned,
                    Err(shared) if Instant::now() < deadline => {
                        db = shared;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(shared) => {
                        *slot = Some(shared);
                        return Err(StoreError::Unavailable {
                            reason: "cannot reopen the database: reads still hold it",
                        });
                    }
                }
            };
            drop(owned);
        }
        let db = Arc::new((self.opener)()?);
        *slot = Some(db.clone());
        tracing::warn!("database reopened after a failed commit");
        Ok(db)
    }
}
