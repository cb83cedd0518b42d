//! Contacts and small settings. A contact's row key is its name's keyed hash and its value
//! (name and card) is sealed, so the file shows no contact name.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use tidings_protocol::{ContactCard, UserId};

use super::{
    AtRest, ClientStore, StoreError, WriteTxn,
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
            refuse_taken(txn, name, card)?;
            put(txn, name, card)
        })
    }

    /// The contact saved under `name`.
    pub fn contact(&self, name: &str) -> Result<Option<ContactCard>, StoreError> {
        self.read(|txn| {
            let row = txn.at_rest.blind_name(name);
            Ok(open_row(txn.at_rest, &txn.open_table(CONTACTS)?, &row)?.map(|held| held.card))
        })
    }

    /// The name `user` is saved under, if any.
    pub fn contact_name(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        self.read(|txn| {
            let Some(row) = txn
                .open_table(CONTACT_NAMES)?
                .get(user.as_bytes())?
                .map(|row| row.value().to_string())
            else {
                return Ok(None);
            };
            Ok(open_row(txn.at_rest, &txn.open_table(CONTACTS)?, &row)?.map(|held| held.name))
        })
    }

    /// Every contact, by name.
    pub fn contacts(&self) -> Result<Vec<(String, ContactCard)>, StoreError> {
        self.read(|txn| all(txn.at_rest, &txn.open_table(CONTACTS)?))
    }
}

/// A contact as [`CONTACTS`] keeps it, sealed: the row key is the name's keyed hash
/// ([`AtRest::blind_name`]), so the name itself is inside.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredContact {
    /// The name it is saved under.
    pub(super) name: String,
    /// Its card.
    pub(super) card: ContactCard,
}

/// The contact in row `row` of [`CONTACTS`].
fn open_row(
    at_rest: &AtRest,
    contacts: &impl ReadableTable<&'static str, &'static [u8]>,
    row: &str,
) -> Result<Option<StoredContact>, StoreError> {
    contacts
        .get(row)?
        .map(|bytes| at_rest.open_record("contacts", row.as_bytes(), bytes.value()))
        .transpose()
}

/// The contact saved under `name`.
pub(super) fn named(txn: &WriteTxn<'_>, name: &str) -> Result<Option<ContactCard>, StoreError> {
    let row = txn.at_rest.blind_name(name);
    Ok(open_row(txn.at_rest, &txn.open_table(CONTACTS)?, &row)?.map(|held| held.card))
}

/// Every contact, sorted by name.
pub(super) fn all(
    at_rest: &AtRest,
    contacts: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, ContactCard)>, StoreError> {
    let mut out = Vec::new();
    for entry in contacts.iter()? {
        let (row, bytes) = entry?;
        let held: StoredContact =
            at_rest.open_record("contacts", row.value().as_bytes(), bytes.value())?;
        out.push((held.name, held.card));
    }
    out.sort_by(|(one, _), (other, _)| one.cmp(other));
    Ok(out)
}

/// A conflict if `name` or `card`'s user is saved already.
pub(super) fn refuse_taken(
    txn: &WriteTxn<'_>,
    name: &str,
    card: &ContactCard,
) -> Result<(), StoreError> {
    if named(txn, name)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a contact named {name:?} already exists"
        )));
    }
    if let Some(existing) = name_of(txn, &card.user)? {
        return Err(StoreError::Conflict(format!(
            "this user is already saved as {existing:?}"
        )));
    }
    Ok(())
}

/// The name `user` is saved under.
pub(super) fn name_of(txn: &WriteTxn<'_>, user: &UserId) -> Result<Option<String>, StoreError> {
    let Some(row) = txn
        .open_table(CONTACT_NAMES)?
        .get(user.as_bytes())?
        .map(|row| row.value().to_string())
    else {
        return Ok(None);
    };
    Ok(open_row(txn.at_rest, &txn.open_table(CONTACTS)?, &row)?.map(|held| held.name))
}

/// Writes `card` under `name` (both tables).
pub(super) fn put(txn: &WriteTxn<'_>, name: &str, card: &ContactCard) -> Result<(), StoreError> {
    put_replacing(txn, name, card).map(|_| ())
}

/// Writes `card` under `name` (both tables); returns the card the name held before.
pub(super) fn put_replacing(
    txn: &WriteTxn<'_>,
    name: &str,
    card: &ContactCard,
) -> Result<Option<ContactCard>, StoreError> {
    let row = txn.at_rest.blind_name(name);
    let stored = StoredContact {
        name: name.to_string(),
        card: card.clone(),
    };
    let sealed = txn
        .at_rest
        .seal_record("contacts", row.as_bytes(), &stored)?;
    let mut contacts = txn.open_table(CONTACTS)?;
    let previous = open_row(txn.at_rest, &contacts, &row)?.map(|held| held.card);
    contacts.insert(row.as_str(), sealed.as_slice())?;
    txn.open_table(CONTACT_NAMES)?
        .insert(card.user.as_bytes(), row.as_str())?;
    Ok(previous)
}

/// Removes the contact of `user` (both tables); returns its name if there was one.
pub(super) fn remove_user(txn: &WriteTxn<'_>, user: &UserId) -> Result<Option<String>, StoreError> {
    let Some(row) = txn
        .open_table(CONTACT_NAMES)?
        .remove(user.as_bytes())?
        .map(|row| row.value().to_string())
    else {
        return Ok(None);
    };
    let mut contacts = txn.open_table(CONTACTS)?;
    let held = open_row(txn.at_rest, &contacts, &row)?;
    contacts.remove(row.as_str())?;
    Ok(held.map(|held| held.name))
}
