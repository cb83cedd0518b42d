//! Backups: one taken while a load runs restores every message acknowledged before it
//! started; every table of every file is in it; a corrupted or incomplete backup is refused.

use std::{
    collections::HashSet,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};
use tidings_protocol::{
    EnvelopeId, RawEnvelope,
    client::{Response, SendOutcome},
};
use tidings_relay::{
    RegistrationPolicy, STORE_FILE,
    backup::{self, BackupError, DATABASE_FILES, MANIFEST_FILE, Manifest, ManifestKind},
    testing::{RelayDir, loopback_config},
};

use crate::common::{RawDevice, start_relay, start_tweaked};

/// Envelopes per send request of the tests' loads.
const BATCH: usize = 100;

/// Sends `count` envelopes from `from` to `to` in batches; the ids the relay accepted.
pub(crate) async fn send_acked(
    from: &mut RawDevice,
    to: tidings_protocol::Address,
    count: usize,
) -> Vec<EnvelopeId> {
    let mut accepted = Vec::new();
    for start in (0..count).step_by(BATCH) {
        let batch: Vec<RawEnvelope> = (start..count.min(start + BATCH))
            .map(|n| {
                from.envelope_to(to, format!("message {n}").as_bytes())
                    .sign(&from.device)
            })
            .collect();
        accepted.extend(sent_ids(from, batch).await);
    }
    accepted
}

/// Sends one request; the ids of the envelopes accepted.
async fn sent_ids(from: &mut RawDevice, batch: Vec<RawEnvelope>) -> Vec<EnvelopeId> {
    let ids: Vec<EnvelopeId> = batch
        .iter()
        .map(|raw| raw.decode_unverified().unwrap().id)
        .collect();
    match from.send(batch).await {
        Ok(Response::Sent { outcomes }) => ids
            .into_iter()
            .zip(outcomes.iter())
            .filter(|(_, outcome)| **outcome == SendOutcome::Accepted)
            .map(|(id, _)| id)
            .collect(),
        other => panic!("send answered {other:?}"),
    }
}

/// The ids of what `device` drains.
pub(crate) async fn drained_ids(device: &mut RawDevice) -> HashSet<EnvelopeId> {
    device
        .drain()
        .await
        .iter()
        .map(|raw| raw.decode_unverified().unwrap().id)
        .collect()
}

/// A sender that keeps sending to `to` until stopped: what it got acked, and when each of
/// its requests started and how long it took.
/// What a [`Load`] got acked, and each request's start and duration.
pub(crate) type LoadResult = (Vec<EnvelopeId>, Vec<(Instant, Duration)>);

pub(crate) struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<LoadResult>,
}

impl Load {
    pub(crate) fn start(mut from: RawDevice, to: tidings_protocol::Address) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let (mut acked, mut requests) = (Vec::new(), Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let batch = (0..BATCH)
                        .map(|_| from.envelope_to(to, b"load").sign(&from.device))
                        .collect();
                    let began = Instant::now();
                    acked.extend(sent_ids(&mut from, batch).await);
                    requests.push((began, began.elapsed()));
                }
                (acked, requests)
            }
        });
        Self { stop, task }
    }

    pub(crate) async fn finish(self) -> LoadResult {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// The median and the slowest of `requests`.
pub(crate) fn median_and_max(mut requests: Vec<Duration>) -> (Duration, Duration) {
    requests.sort();
    let median = requests
        .get(requests.len() / 2)
        .copied()
        .unwrap_or_default();
    (median, requests.last().copied().unwrap_or_default())
}

/// Restores `backup` into a new dir and starts a relay on it; Bob drains it.
async fn restored_mail(
    backup: &Path,
    bob: (&ed25519_dalek::SigningKey, &ed25519_dalek::SigningKey),
) -> HashSet<EnvelopeId> {
    let restored = tempfile::tempdir().unwrap();
    let data_dir = restored.path().join("data");
    backup::restore(backup, &data_dir).unwrap();
    let mut dir = RelayDir::existing(data_dir, loopback_config());
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let mut bob = RawDevice::connect_as(&address, bob.0.clone(), bob.1.clone()).await;
    let ids = drained_ids(&mut bob).await;
    dir.stop(relay).await;
    ids
}

/// The backup under load, at a size given by `before` (envelopes acked before it started).
async fn backup_under_load(before: usize) {
    let relay = start_tweaked(
        |config| {
            config.limits.user_envelopes_per_sec = 1_000_000;
            config.limits.user_envelopes_burst = 1_000_000;
            config.limits.mailbox_max_envelopes = 10_000_000;
            config.limits.mailbox_max_bytes = 10 << 30;
        },
        None,
    )
    .await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let carol = RawDevice::registered(&address).await;
    let bob = RawDevice::registered(&address).await;
    let (bob_account, bob_device) = (bob.account.clone(), bob.device.clone());
    let bob_address = bob.address();
    drop(bob);

    let filled = Instant::now();
    let acked_before: HashSet<EnvelopeId> = send_acked(&mut alice, bob_address, before)
        .await
        .into_iter()
        .collect();
    assert_eq!(acked_before.len(), before);
    let fill_time = filled.elapsed();

    let load = Load::start(carol, bob_address);
    // The load runs a while before the backup starts (its pace without a backup).
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("backup");
    let began = Instant::now();
    let manifest = relay.relay.backup(to.clone()).await.unwrap();
    let took = began.elapsed();
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (load_acked, requests) = load.finish().await;
    relay.relay.shutdown().await;
    let (during, outside): (Vec<_>, Vec<_>) = requests
        .iter()
        .partition(|(start, took)| *start < ended && *start + *took > began);
    let (quiet_median, quiet_max) = median_and_max(outside.iter().map(|(_, took)| *took).collect());
    let (busy_median, busy_max) = median_and_max(during.iter().map(|(_, took)| *took).collect());
    eprintln!(
        "backup of a relay holding {before} envelopes (filled in {fill_time:?}): {took:?}, \
         {} files; load requests of {BATCH} envelopes without a backup: median {quiet_median:?}, \
         max {quiet_max:?} ({} requests); during it: median {busy_median:?}, max {busy_max:?} \
         ({} requests)",
        manifest.files.len(),
        outside.len(),
        during.len()
    );
    assert_eq!(manifest.kind, ManifestKind::Online);
    assert!(
        !during.is_empty(),
        "the load ran while the backup was taken"
    );

    let restored = restored_mail(&to, (&bob_account, &bob_device)).await;
    let lost: Vec<_> = acked_before.difference(&restored).collect();
    assert!(
        lost.is_empty(),
        "{} of {before} envelopes acked before the backup started are not in it",
        lost.len()
    );
    let load_acked: HashSet<EnvelopeId> = load_acked.into_iter().collect();
    let invented: Vec<_> = restored
        .iter()
        .filter(|id| !acked_before.contains(id) && !load_acked.contains(id))
        .collect();
    assert!(
        invented.is_empty(),
        "the restored relay holds mail nobody sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_message_acked_before_it_started() {
    backup_under_load(2_000).await;
}

/// The measurement the README quotes: `cargo nextest run -p tidings-relay --test operator
/// --run-ignored only backup_of_100k_envelopes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (about a minute in a debug build), not a check"]
async fn backup_of_100k_envelopes() {
    backup_under_load(100_000).await;
}

/// Every table of `original`, with its length.
fn tables_of(path: &Path) -> Vec<(String, u64)> {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let mut tables: Vec<(String, u64)> = txn
        .list_tables()
        .unwrap()
        .map(|handle| {
            let name = handle.name().to_string();
            let len = txn.open_untyped_table(handle).unwrap().len().unwrap();
            (name, len)
        })
        .collect();
    tables.sort();
    tables
}

/// A stopped relay that held mail for a while: its data dir.
async fn used_relay() -> RelayDir {
    let mut dir = RelayDir::temp(|_| {}).unwrap();
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let mut alice = RawDevice::registered(&address).await;
    let bob = RawDevice::registered(&address).await;
    send_acked(&mut alice, bob.address(), 30).await;
    drop(bob);
    dir.stop(relay).await;
    dir
}

#[tokio::test]
async fn every_table_of_every_file_is_in_the_backup() {
    let dir = used_relay().await;
    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("backup");
    let manifest = backup::backup_offline(dir.path(), &to).unwrap();
    assert_eq!(manifest.kind, ManifestKind::Offline);
    for file in DATABASE_FILES {
        let original = tables_of(&dir.path().join(file));
        assert!(!original.is_empty(), "{file} holds tables");
        assert_eq!(tables_of(&to.join(file)), original, "{file}");
    }
    assert!(
        tables_of(&to.join(STORE_FILE))
            .iter()
            .any(|(name, len)| name == "mailbox" && *len == 30),
        "the mail is in the copy"
    );
    assert_eq!(
        manifest.schemas.get(STORE_FILE),
        Some(&tidings_relay::store::schema::RELAY.current())
    );
    // Every file the manifest names is there, config and keys too.
    let names: HashSet<&str> = manifest
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    for file in [
        "relay.redb",
        "status.redb",
        "invites.redb",
        "relay.toml",
        "relay.key",
    ] {
        assert!(names.contains(file), "{file} missing from {names:?}");
    }
    manifest.verify(&to).unwrap();
}

#[tokio::test]
async fn a_table_this_build_does_not_know_fails_the_backup() {
    let dir = used_relay().await;
    {
        let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<u64, u64>::new(
            "from_a_newer_release",
        ))
        .unwrap()
        .insert(1, 2)
        .unwrap();
        txn.commit().unwrap();
    }
    let target = tempfile::tempdir().unwrap();
    match backup::backup_offline(dir.path(), &target.path().join("backup")) {
        Err(BackupError::UnknownTable { file, table }) => {
            assert_eq!(file, STORE_FILE);
            assert_eq!(table, "from_a_newer_release");
        }
        other => panic!("expected UnknownTable, got {other:?}"),
    }
    // Without a manifest, what was written is not a backup.
    assert!(matches!(
        backup::restore(
            &target.path().join("backup"),
            &target.path().join("restored")
        ),
        Err(BackupError::NoManifest(_))
    ));
}

#[tokio::test]
async fn an_offline_backup_of_a_running_relay_is_refused() {
    let relay = start_relay(RegistrationPolicy::Open).await;
    let target = tempfile::tempdir().unwrap();
    let error =
        backup::backup_offline(relay.dir.path(), &target.path().join("backup")).unwrap_err();
    assert!(matches!(error, BackupError::RelayRunning(_)), "{error}");
    assert!(error.to_string().contains("stop it first"), "{error}");
    relay.relay.shutdown().await;
}

/// A copy of the backup at `from` in a new temp dir.
fn copy_of(from: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in walk(from) {
        let relative = entry.strip_prefix(from).unwrap();
        let target = copy.path().join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, target).unwrap();
    }
    copy
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// What `tidings-relay restore` says about the backup at `from` (it must fail).
fn restore_refusal(from: &Path) -> String {
    let target = tempfile::tempdir().unwrap();
    let args = [
        "tidings-relay".to_string(),
        "restore".into(),
        "--from".into(),
        from.display().to_string(),
        "--data-dir".into(),
        target.path().join("data").display().to_string(),
    ];
    let error = std::thread::spawn(move || tidings_relay::cli::main_from(args))
        .join()
        .unwrap()
        .unwrap_err();
    assert!(
        !target.path().join("data").exists(),
        "nothing is written for a refused backup"
    );
    format!("{error:#}")
}

#[tokio::test]
async fn restore_refuses_a_corrupted_or_incomplete_backup_naming_the_file() {
    let dir = used_relay().await;
    let target = tempfile::tempdir().unwrap();
    let good = target.path().join("backup");
    backup::backup_offline(dir.path(), &good).unwrap();

    // One flipped byte in the middle of the mailbox database.
    let flipped = copy_of(&good);
    let path = flipped.path().join(STORE_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let shown = restore_refusal(flipped.path());
    assert!(
        shown.contains("corrupted") && shown.contains(&path.display().to_string()),
        "{shown}"
    );

    // A missing file.
    let missing = copy_of(&good);
    std::fs::remove_file(missing.path().join("invites.redb")).unwrap();
    let shown = restore_refusal(missing.path());
    assert!(
        shown.contains("incomplete") && shown.contains("invites.redb"),
        "{shown}"
    );

    // No manifest: interrupted before it finished.
    let unfinished = copy_of(&good);
    std::fs::remove_file(unfinished.path().join(MANIFEST_FILE)).unwrap();
    assert!(restore_refusal(unfinished.path()).contains("incomplete"));

    // A manifest naming a file outside the backup.
    let hostile = copy_of(&good);
    let manifest_path = hostile.path().join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path)
        .unwrap()
        .replace("path = \"relay.toml\"", "path = \"../../etc/passwd\"");
    std::fs::write(&manifest_path, text).unwrap();
    assert!(restore_refusal(hostile.path()).contains("bad manifest"));

    // The intact backup restores, but never over an existing data dir.
    let restored = tempfile::tempdir().unwrap();
    let error = backup::restore(&good, dir.path()).unwrap_err();
    assert!(matches!(error, BackupError::NotEmpty(_)), "{error}");
    let manifest: Manifest = backup::restore(&good, &restored.path().join("data")).unwrap();
    assert_eq!(manifest.kind, ManifestKind::Offline);
    let mut restored_dir = RelayDir::existing(restored.path().join("data"), loopback_config());
    let relay = restored_dir.start(None).await.unwrap();
    restored_dir.stop(relay).await;
}

#[test]
fn backups_and_restored_keys_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let source = tempfile::tempdir().unwrap();
    tidings_relay::init(source.path(), &loopback_config()).unwrap();
    let target = tempfile::tempdir().unwrap();
    backup::backup_offline(source.path(), &target.path().join("backup")).unwrap();
    backup::restore(&target.path().join("backup"), &target.path().join("data")).unwrap();
    // Every file of the backup is owner-only too: it holds the keys.
    for entry in std::fs::read_dir(target.path().join("backup")).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{:?} is readable by others",
            entry.file_name()
        );
    }
    for key in ["relay.key", "vapid.key"] {
        let mode = std::fs::metadata(target.path().join("data").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
    }
}

#[tokio::test]
async fn media_blobs_are_backed_up_and_served_by_the_restored_relay() {
    use crate::common::BlobClient;
    use tidings_protocol::BlobId;
    let relay = start_relay(RegistrationPolicy::Open).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let sender = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&sender, &address);
    let bytes: Vec<u8> = (0..300_000u32).map(|n| (n * 7 % 251) as u8).collect();
    let id = BlobId::of(&bytes);
    client.upload(&bytes).await.unwrap();
    // An upload left unfinished is not a whole blob: it stays out of the backup.
    let unfinished: Vec<u8> = vec![9; 100_000];
    let (_, mut stream) = client.start_upload(&unfinished).await;
    assert!(stream.send(&unfinished[..10_000]).await);

    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("backup");
    let manifest = relay.relay.backup(to.clone()).await.unwrap();
    drop(stream);
    relay.relay.shutdown().await;
    let blob_entry = format!("blobs/{id}");
    assert!(manifest.files.iter().any(|file| file.path == blob_entry));
    assert!(
        manifest
            .files
            .iter()
            .all(|file| !file.path.starts_with("blobs/partial")),
        "no unfinished upload in a backup"
    );

    let restored = tempfile::tempdir().unwrap();
    let data_dir = restored.path().join("data");
    backup::restore(&to, &data_dir).unwrap();
    let mut dir = RelayDir::existing(data_dir, loopback_config());
    let relay = dir.start(None).await.unwrap();
    let address = relay.tcp_dial_addr().unwrap();
    let reader = RawDevice::registered(&address).await;
    let mut client = BlobClient::of(&reader, &address);
    assert!(
        client.download(id, 0).await.unwrap() == bytes,
        "the blob differs"
    );
    dir.stop(relay).await;
}
