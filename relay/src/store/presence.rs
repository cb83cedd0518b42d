//! Presence settings and last seen of local users, in the `presence` table.

use redb::{Database, ReadableDatabase, ReadableTable};
use tidings_protocol::{UserId, codec};

use tidings_protocol::store::StoreError;

use super::{
    tables::{PRESENCE, PresenceChange, PresenceRecord},
    txn::{Tables, corrupt},
};

/// Largest presence record (an allowed list at its limit).
const MAX_PRESENCE_RECORD: usize = 256 * 1024;

/// Decodes a `presence` value (reached by the fuzz checks through `store::decode_presence`).
pub(crate) fn decode(bytes: &[u8]) -> Result<PresenceRecord, StoreError> {
    codec::decode(bytes, MAX_PRESENCE_RECORD).map_err(|error| corrupt("presence", error))
}

/// The record of `user`, or the defaults (everyone may see; never seen).
pub fn read(db: &Database, user: &UserId) -> Result<PresenceRecord, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(PRESENCE)?;
    match table.get(user.as_bytes())? {
        Some(bytes) => decode(bytes.value()),
        None => Ok(PresenceRecord::default()),
    }
}

impl Tables<'_> {
    pub fn change_presence(
        &mut self,
        user: &UserId,
        change: &PresenceChange,
    ) -> Result<(), StoreError> {
        let mut record = match self.presence.get(user.as_bytes())? {
            Some(bytes) => decode(bytes.value())?,
            None => PresenceRecord::default(),
        };
        match change {
            PresenceChange::Settings {
                visibility,
                allowed,
            } => {
                record.visibility = *visibility;
                record.allowed = allowed.clone();
            }
            PresenceChange::LastSeen(at_ms) => {
                record.last_seen_ms = Some(record.last_seen_ms.unwrap_or(0).max(*at_ms));
            }
        }
        self.presence
            .insert(user.as_bytes(), codec::encode(&record).as_slice())?;
        Ok(())
    }
}
