//! In Chromium (`client-lib/test-in-chromium.sh`, a Dedicated Worker): redb on OPFS, and the injected clock and timers.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tidings_client::{
    browser::{self, OpfsFile, opfs},
    runtime::{self, Instant},
    store::ClientStore,
};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

// OPFS's synchronous access exists only in a Dedicated Worker, where the device runs.
wasm_bindgen_test_configure!(run_in_dedicated_worker);

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("test");

/// A fresh OPFS directory for one test.
async fn fresh(dir: &str) -> &str {
    opfs::remove_dir(dir).await.unwrap();
    dir
}

#[wasm_bindgen_test]
async fn an_opfs_file_keeps_what_was_written_after_reopening() {
    let dir = fresh("t-reopen").await;
    let file = OpfsFile::open(dir, "data").await.unwrap();
    assert_eq!(file.size().unwrap(), 0);
    file.write_at(0, b"hello").unwrap();
    file.write_at(10, b"world").unwrap();
    file.flush().unwrap();
    assert_eq!(file.size().unwrap(), 15);
    drop(file);

    let file = OpfsFile::open(dir, "data").await.unwrap();
    let mut back = [0xffu8; 15];
    file.read_at(0, &mut back).unwrap();
    assert_eq!(&back, b"hello\0\0\0\0\0world", "the gap reads as zeros");
    let mut past = [0u8; 4];
    let error = file.read_at(13, &mut past).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(file.write_at(opfs::MAX_OPFS_FILE_BYTES, b"x").is_err());
}

#[wasm_bindgen_test]
async fn an_opfs_file_truncates_and_grows_with_zeros() {
    let dir = fresh("t-truncate").await;
    let file = OpfsFile::open(dir, "data").await.unwrap();
    file.replace(b"0123456789").unwrap();
    file.truncate(4).unwrap();
    assert_eq!(file.read_all().unwrap(), b"0123");
    file.truncate(6).unwrap();
    assert_eq!(file.read_all().unwrap(), b"0123\0\0");
}

#[wasm_bindgen_test]
async fn an_open_opfs_file_cannot_be_opened_twice() {
    let dir = fresh("t-exclusive").await;
    let first = OpfsFile::open(dir, "data").await.unwrap();
    assert!(
        OpfsFile::open(dir, "data").await.is_err(),
        "another tab must not open it"
    );
    first.close();
    OpfsFile::open(dir, "data").await.unwrap();
}

#[wasm_bindgen_test]
async fn a_redb_database_on_opfs_commits_and_reopens() {
    let dir = fresh("t-redb").await;
    {
        let db = redb::Database::builder()
            .create_with_backend(OpfsFile::open(dir, "db").await.unwrap())
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            for key in 0..500u64 {
                table.insert(key, vec![key as u8; 100].as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let db = redb::Database::builder()
        .create_with_backend(OpfsFile::open(dir, "db").await.unwrap())
        .unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TABLE).unwrap();
    assert_eq!(table.len().unwrap(), 500);
    assert_eq!(
        table.get(499).unwrap().unwrap().value(),
        vec![243u8; 100].as_slice()
    );
}

#[wasm_bindgen_test]
async fn a_browser_device_is_created_then_reopened_with_its_passphrase() {
    let dir = fresh("t-device").await;
    assert!(!browser::device_exists(dir).await.unwrap());
    let created = browser::create_device(dir, Some("secret")).await.unwrap();
    let user = created.user_id();
    drop(created);
    assert!(browser::device_exists(dir).await.unwrap());
    assert!(browser::create_device(dir, None).await.is_err());
    assert!(browser::open_device(dir, Some("wrong")).await.is_err());
    let opened = browser::open_device(dir, Some("secret")).await.unwrap();
    assert_eq!(opened.user_id(), user);
    assert!(opened.history(&user.to_string()).unwrap().is_empty());
    drop(opened);
    // The store itself opens from a backend as the native one does.
    ClientStore::open_backend(
        OpfsFile::open(dir, "other.redb").await.unwrap(),
        tidings_keys::Identity::generate().store_key(),
    )
    .unwrap();
}

#[wasm_bindgen_test]
async fn sleep_waits_and_the_clocks_are_sane() {
    let start = Instant::now();
    runtime::sleep(Duration::from_millis(120)).await;
    let slept = start.elapsed();
    assert!(slept >= Duration::from_millis(110), "slept only {slept:?}");
    assert!(slept < Duration::from_secs(5), "slept {slept:?}");
    let wall = runtime::now_ms();
    // After 2025-01-01 and before 2100: the wall clock is Date.now(), not zero or a panic.
    assert!(
        wall > 1_735_689_600_000 && wall < 4_102_444_800_000,
        "now_ms = {wall}"
    );
    let until = Instant::now() + Duration::from_millis(50);
    runtime::sleep_until(until).await;
    assert!(Instant::now() >= until);
}

#[wasm_bindgen_test]
async fn timeout_fires_and_lets_quick_work_finish() {
    let start = Instant::now();
    let slow = runtime::timeout(
        Duration::from_millis(80),
        runtime::sleep(Duration::from_secs(30)),
    );
    assert_eq!(slow.await, Err(runtime::Elapsed));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(70) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let quick = runtime::timeout(Duration::from_secs(5), async { 7 }).await;
    assert_eq!(quick, Ok(7));
}

#[wasm_bindgen_test]
async fn interval_ticks_at_once_then_every_period_and_spawn_runs() {
    let mut interval = runtime::interval(Duration::from_millis(40));
    let start = Instant::now();
    interval.tick().await;
    assert!(
        start.elapsed() < Duration::from_millis(30),
        "the first tick is at once"
    );
    interval.tick().await;
    interval.tick().await;
    assert!(
        start.elapsed() >= Duration::from_millis(75),
        "{:?}",
        start.elapsed()
    );

    let (done, finished) = futures::channel::oneshot::channel();
    runtime::spawn(async move {
        runtime::sleep(Duration::from_millis(10)).await;
        let _ = done.send(42);
    });
    assert_eq!(finished.await, Ok(42));
    assert_eq!(runtime::spawn_blocking(|| 5).await, Ok(5));
}

/// Media's file layer in the browser: relative paths are OPFS directories and files.
#[wasm_bindgen_test]
async fn media_files_are_created_renamed_sized_and_removed_in_opfs() {
    use std::{
        io::{Read, Seek, SeekFrom, Write},
        path::Path,
    };

    use tidings_client::runtime::files;

    let dir = fresh("t-files").await;
    let temp = Path::new(dir).join("media/outgoing/.x.tidings-partial");
    let whole = Path::new(dir).join("media/outgoing/x.blob");
    assert!(!files::is_dir(&Path::new(dir).join("media")).await);
    let mut file = files::create_sync(&temp).await.unwrap();
    file.write_all(b"sealed bytes").unwrap();
    file.sync_all().unwrap();
    drop(file);
    assert!(files::is_dir(&Path::new(dir).join("media/outgoing")).await);
    assert!(!files::is_dir(&temp).await, "a file is not a directory");
    files::rename(&temp, &whole).await.unwrap();
    assert_eq!(files::size_of(&temp).await.unwrap(), None);
    assert_eq!(files::size_of(&whole).await.unwrap(), Some(12));

    let mut file = files::open_sync(&whole).await.unwrap();
    file.seek(SeekFrom::Start(7)).unwrap();
    let mut back = String::new();
    file.read_to_string(&mut back).unwrap();
    assert_eq!(back, "bytes");
    drop(file);

    let mut streamed = files::File::append(&whole).await.unwrap();
    streamed.write_all(b"!").await.unwrap();
    assert_eq!(streamed.len().await.unwrap(), 13);
    drop(streamed);

    assert!(files::open_sync(Path::new("../escape")).await.is_err());
    files::remove_file(&whole).await.unwrap();
    assert_eq!(
        files::remove_file(&whole).await.unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}
