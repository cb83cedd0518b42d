//! Fuzz checks of the relay's own decoders (its config file and its stored records), shared
//! by the `fuzz/` targets and the corpus test.
//!
//! Like `tidings_protocol::fuzzing`: the real decoder runs on arbitrary bytes, and whatever
//! decodes must re-encode to itself. A check panics only when a property breaks.

use tidings_protocol::{
    EnvelopeId, MailboxItem, SignedPreKey, codec,
    fuzzing::{Check, mailbox_item, round_trip},
};

use crate::{
    config::RelayConfig,
    store::{self, Cursor, OutboxMeta, tables},
};

/// The checks of this crate, by fuzz target name.
pub const TARGETS: &[(&str, Check)] = &[
    ("relay_config", relay_config),
    ("relay_store_records", relay_store_records),
];

/// `relay.toml` text: parsed and validated as `tidings-relay run` does, and written back as
/// `init` writes it.
pub fn relay_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = RelayConfig::parse(text) else {
        return;
    };
    let _ = config.validate();
    let written = config.to_commented_toml();
    assert_eq!(
        RelayConfig::parse(&written),
        Ok(config),
        "the file init writes does not read back:\n{written}"
    );
}

/// A value from any table of the relay's redb file, read as each kind of record.
pub fn relay_store_records(data: &[u8]) {
    // users
    if let Ok(user) = store::decode_user(data) {
        // The input passed the decoder's bound; so does an encoding no longer than it.
        round_trip(&user, data.len(), store::decode_user);
    }
    // device_records
    if let Ok(device) = store::decode_device(data) {
        round_trip(&device, data.len(), store::decode_device);
    }
    // presence
    if let Ok(record) = store::decode_presence(data) {
        round_trip(&record, data.len(), store::decode_presence);
    }
    // push_subscriptions
    if let Ok(record) = store::decode_push_record(data) {
        round_trip(&record, data.len(), store::decode_push_record);
    }
    // profiles
    if let Ok(profile) = store::decode_profile(data) {
        round_trip(&profile, data.len(), store::decode_profile);
    }
    // mailbox and blobs: a blob reference, an envelope or a bounce; what the push trigger
    // reads of one (no panic, whatever the bytes)
    let _ = crate::push::is_message(data);
    match tables::parse_blob_ref(data) {
        Some(id) => assert_eq!(tables::blob_ref(&EnvelopeId::from_bytes(id)), data),
        None => {
            if let Ok(item) = MailboxItem::from_stored(data.to_vec()) {
                mailbox_item(item);
            }
        }
    }
    // one_time_keys, with the bound `Tables::claim` reads them under
    if let Ok(prekey) = codec::decode::<SignedPreKey>(data, 1024) {
        round_trip(&prekey, 1024, |bytes| {
            codec::decode::<SignedPreKey>(bytes, 1024)
        });
        let _ = prekey.verify();
    }
    // media_blobs, media_uploads
    if let Ok(blob) = store::decode_media_blob(data) {
        round_trip(&blob, data.len(), store::decode_media_blob);
    }
    if let Ok(upload) = store::decode_media_upload(data) {
        round_trip(&upload, data.len(), store::decode_media_upload);
    }
    // cursors, seen marks, outbox metadata, media upload keys: fixed width
    if let Some(bytes) = data.first_chunk::<16>() {
        assert_eq!(&Cursor::from_bytes(bytes).to_bytes(), bytes);
        assert_eq!(&tables::SeenMark::from_bytes(bytes).to_bytes(), bytes);
    }
    if let Some(bytes) = data.first_chunk::<64>() {
        let (user, blob) = tables::media_upload_of_key(bytes);
        assert_eq!(&tables::media_upload_key(&user, &blob), bytes);
    }
    if let Some(bytes) = data.first_chunk::<88>() {
        assert_eq!(&OutboxMeta::from_bytes(bytes).to_bytes(), bytes);
    }
}
