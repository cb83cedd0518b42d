//! Invite codes, in their own small database that `tidings-relay invite` may change while the
//! relay runs (redb's multi-writer mode; the hot mailbox database stays single-process).

use std::{path::Path, sync::Arc};

use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::StoreError;

/// File name of the invite database inside the data dir.
pub const INVITES_FILE: &str = "invites.redb";

/// code -> uses left (8 bytes) ++ expiry in ms since the epoch, 0 for none (8 bytes).
pub(crate) const INVITES: TableDefinition<&str, &[u8; 16]> = TableDefinition::new("invites");

/// One invite code and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The code people type.
    pub code: String,
    /// Registrations it still allows.
    pub uses_left: u64,
    /// When it stops working, if ever (ms since the epoch).
    pub expires_at_ms: Option<u64>,
}

/// Why an invite code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteRejection {
    /// No such code.
    #[error("unknown invite code")]
    Unknown,
    /// Every use was taken.
    #[error("invite code already used")]
    UsedUp,
    /// Past its expiry.
    #[error("invite code expired")]
    Expired,
}

fn encode(uses_left: u64, expires_at_ms: Option<u64>) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&uses_left.to_be_bytes());
    out[8..].copy_from_slice(&expires_at_ms.unwrap_or(0).to_be_bytes());
    out
}

fn decode(code: &str, bytes: &[u8; 16]) -> Invite {
    let (uses, expiry) = bytes.split_at(8);
    let mut word = [0u8; 8];
    word.copy_from_slice(uses);
    let uses_left = u64::from_be_bytes(word);
    word.copy_from_slice(expiry);
    let expiry = u64::from_be_bytes(word);
    Invite {
        code: code.to_string(),
        uses_left,
        expires_at_ms: (expiry != 0).then_some(expiry),
    }
}

/// Handle to the invite database.
#[derive(Clone)]
pub struct Invites {
    db: Arc<Database>,
}

impl Invites {
    /// Opens (creating if needed) the invite database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .create(data_dir.join(INVITES_FILE))?;
        crate::store::schema::INVITES.apply(&db)?;
        let txn = db.begin_write()?;
        txn.open_table(INVITES)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The open invite database (for online backups).
    pub(crate) fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// Creates a code good for `uses` registrations, expiring after `valid_for_ms` if given.
    pub fn create(&self, uses: u64, valid_for_ms: Option<u64>) -> Result<Invite, StoreError> {
        let code = bs58::encode(rand::random::<[u8; 9]>()).into_string();
        let expires_at_ms = valid_for_ms.map(|ms| tidings_protocol::now_ms().saturating_add(ms));
        let txn = self.db.begin_write()?;
        txn.open_table(INVITES)?
            .insert(code.as_str(), &encode(uses, expires_at_ms))?;
        txn.commit()?;
        Ok(Invite {
            code,
            uses_left: uses,
            expires_at_ms,
        })
    }

    /// Every code with uses left.
    pub fn list(&self) -> Result<Vec<Invite>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INVITES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (code, value) = entry?;
            out.push(decode(code.value(), value.value()));
        }
        Ok(out)
    }

    /// Takes one use of `code` (blocking; call from the blocking pool).
    pub fn consume(&self, code: &str) -> Result<Result<(), InviteRejection>, StoreError> {
        let txn = self.db.begin_write()?;
        let verdict = {
            let mut table = txn.open_table(INVITES)?;
            let found = table.get(code)?.map(|value| decode(code, value.value()));
            match found {
                None => Err(InviteRejection::Unknown),
                Some(invite)
                    if invite
                        .expires_at_ms
                        .is_some_and(|at| at <= tidings_protocol::now_ms()) =>
                {
                    Err(InviteRejection::Expired)
                }
                Some(invite) if invite.uses_left == 0 => Err(InviteRejection::UsedUp),
                Some(invite) => {
                    table.insert(code, &encode(invite.uses_left - 1, invite.expires_at_ms))?;
                    Ok(())
                }
            }
        };
        txn.commit()?;
        Ok(verdict)
    }

    /// Gives back a use taken by [`Invites::consume`] when the registration then failed.
    pub fn refund(&self, code: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(INVITES)?;
            let found = table.get(code)?.map(|value| decode(code, value.value()));
            if let Some(invite) = found {
                table.insert(code, &encode(invite.uses_left + 1, invite.expires_at_ms))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes a code; returns whether it existed.
    pub fn revoke(&self, code: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(INVITES)?.remove(code)?.is_some();
        txn.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_as_often_as_it_was_made_for() {
        let dir = tempfile::tempdir().unwrap();
        let invites = Invites::open(dir.path()).unwrap();
        let invite = invites.create(2, None).unwrap();
        assert_eq!(invites.consume(&invite.code).unwrap(), Ok(()));
        assert_eq!(invites.consume(&invite.code).unwrap(), Ok(()));
        assert_eq!(
            invites.consume(&invite.code).unwrap(),
            Err(InviteRejection::UsedUp)
        );
        invites.refund(&invite.code).unwrap();
        assert_eq!(invites.consume(&invite.code).unwrap(), Ok(()));
        assert_eq!(
            invites.consume("nope").unwrap(),
            Err(InviteRejection::Unknown)
        );
    }

    #[test]
    fn expired_codes_are_refused_and_a_second_process_sees_new_codes() {
        let dir = tempfile::tempdir().unwrap();
        let relay_side = Invites::open(dir.path()).unwrap();
        let admin_side = Invites::open(dir.path()).unwrap();
        let invite = admin_side.create(1, Some(0)).unwrap();
        assert_eq!(
            relay_side.consume(&invite.code).unwrap(),
            Err(InviteRejection::Expired)
        );
        let fresh = admin_side.create(1, Some(60_000)).unwrap();
        assert_eq!(relay_side.consume(&fresh.code).unwrap(), Ok(()));
        assert_eq!(admin_side.list().unwrap().len(), 2);
    }
}
