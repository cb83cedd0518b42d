//! Fuzz checks of what the client reads from disk (its store's records and the key file),
//! shared by the `fuzz/` targets and the corpus test.
//!
//! Like `tidings_protocol::fuzzing`: the real decoder runs on arbitrary bytes, and whatever
//! decodes must re-encode to itself. A check panics only when a property breaks.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Serialize, de::DeserializeOwned};
use tidings_keys::{Identity, keyfile};
use tidings_protocol::{
    ContactCard, HomeRecord, codec,
    content::SenderKeys,
    fuzzing::{Check, round_trip},
    group::SignedDescriptor,
    limits::{MAX_DESCRIPTOR_BYTES, MAX_HOME_RECORD_BYTES},
};

use crate::store::{
    StoreError,
    profiles::{KnownProfile, OwnProfile},
    tables::{MAX_RECORD, MessageRecord, OutboundGroup, OutboxEntry, UploadRecord},
};

/// The checks of this crate, by fuzz target name.
pub const TARGETS: &[(&str, Check)] = &[
    ("client_store_records", client_store_records),
    ("key_file", key_file),
];

/// Reads `data` as a record of `table` the way the store does, and re-encodes it.
fn record<T>(table: &'static str, data: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let decode = |bytes: &[u8]| -> Result<T, StoreError> { crate::store::decode(table, bytes) };
    if let Ok(value) = decode(data) {
        round_trip(&value, MAX_RECORD, decode);
    }
}

/// A value from any table of the client's redb file, read as each kind of record.
pub fn client_store_records(data: &[u8]) {
    record::<MessageRecord>("messages", data);
    record::<OutboxEntry>("outbox", data);
    record::<ContactCard>("contacts", data);
    record::<OutboundGroup>("group_outbound", data);
    record::<UploadRecord>("uploads", data);
    record::<OwnProfile>("own_profile", data);
    record::<KnownProfile>("profiles", data);
    record::<SenderKeys>("meta", data);
    // groups: the newest accepted descriptor of each group
    if let Ok(descriptor) = SignedDescriptor::decode(data) {
        round_trip(&descriptor, MAX_DESCRIPTOR_BYTES, SignedDescriptor::decode);
    }
    // meta "home_record", with the bound `Client::home_record` reads it under
    if let Ok(home) = codec::decode::<HomeRecord>(data, MAX_HOME_RECORD_BYTES) {
        round_trip(&home, MAX_HOME_RECORD_BYTES, |bytes| {
            codec::decode::<HomeRecord>(bytes, MAX_HOME_RECORD_BYTES)
        });
    }
}

/// A private temporary file that is removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tidings-fuzz-key-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = TempFile(path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file.0)?
            .write_all(contents)?;
        Ok(file)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The identity key file, read as `tidings` reads it (without a passphrase: opening a sealed
/// file runs Argon2 with the costs it names, which is slow by design).
pub fn key_file(data: &[u8]) {
    let Ok(file) = TempFile::new(data) else {
        return;
    };
    let info = keyfile::inspect(&file.0);
    if let Ok(identity) = Identity::load(&file.0, None) {
        let info = info.as_ref().ok();
        assert!(
            info.is_some_and(|info| !info.encrypted
                && info.user == identity.user_id()
                && info.device == identity.device_id()),
            "inspect says {info:?} of a file that loads"
        );
        assert_eq!(identity.cert().verify(), Ok(()));
    }
}
