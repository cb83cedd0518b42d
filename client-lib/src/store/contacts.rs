//! Contacts and small settings.

use redb::ReadableTable;
use tidings_protocol::{ContactCard, UserId};

use super::{
    ClientStore, StoreError, decode, encode,
    tables::{CONTACT_NAMES, CONTACTS, META},
};

impl ClientStore {
    /// Reads a setting.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            Ok(txn
                .open_table(META)?
                .get(key)?
                .map(|value| value.value().to_vec()))
        })
    }

    /// Writes a setting.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(META)?.insert(key, value)?;
            Ok(())
        })
    }

    /// Saves a contact under `name`; a name or user already saved is a conflict.
    pub fn add_contact(&self, name: &str, card: &ContactCard) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut contacts = txn.open_table(CONTACTS)?;
            let mut names = txn.open_table(CONTACT_NAMES)?;
            if contacts.get(name)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a contact named {name:?} already exists"
                )));
            }
            if let Some(existing) = names.get(card.user.as_bytes())? {
                return Err(StoreError::Conflict(format!(
                    "this user is already saved as {:?}",
                    existing.value()
                )));
            }
            contacts.insert(name, encode(card).as_slice())?;
            names.insert(card.user.as_bytes(), name)?;
            Ok(())
        })
    }

    /// The contact saved under `name`.
    pub fn contact(&self, name: &str) -> Result<Option<ContactCard>, StoreError> {
        self.read(|txn| match txn.open_table(CONTACTS)?.get(name)? {
            Some(bytes) => decode("contacts", bytes.value()).map(Some),
            None => Ok(None),
        })
    }

    /// The name `user` is saved under, if any.
    pub fn contact_name(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        self.read(|txn| {
            Ok(txn
                .open_table(CONTACT_NAMES)?
                .get(user.as_bytes())?
                .map(|name| name.value().to_string()))
        })
    }

    /// Every contact, by name.
    pub fn contacts(&self) -> Result<Vec<(String, ContactCard)>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(CONTACTS)?.iter()? {
                let (name, card) = entry?;
                out.push((name.value().to_string(), decode("contacts", card.value())?));
            }
            Ok(out)
        })
    }
}
