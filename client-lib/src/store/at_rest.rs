//! Encryption at rest: the store's personal values sealed, and its search words hashed, under keys derived from the device's store key.
//!
//! Every personal value goes through [`AtRest::seal`] and [`AtRest::open`] (nowhere else):
//! XChaCha20-Poly1305 with a random 24-byte nonce per value, and the table's name and the
//! row's key as associated data, so a value moved to another row or table no longer opens.
//! A search word is stored as [`AtRest::blind`]: an HMAC-SHA256 under a second derived key.
//! The transaction wrappers ([`WriteTxn`], [`ReadTxn`]) carry the keys to every store
//! function while giving redb's own API unchanged (they deref to redb's transactions).

use std::ops::Deref;

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use rand::Rng;
use redb::{ReadTransaction, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;
use tidings_keys::StoreKey;
use zeroize::Zeroizing;

use super::{StoreError, decode, encode};

/// HKDF label of the key that seals values.
const SEAL_LABEL: &[u8] = b"tidings client store v1: values";
/// HKDF label of the key that hashes search words and contact names.
const BLIND_LABEL: &[u8] = b"tidings client store v1: search words";
/// Bytes of a value's nonce (XChaCha20's extended nonce), stored before its ciphertext.
pub const NONCE_LEN: usize = 24;
/// Bytes of a value's Poly1305 tag: with the nonce, all a sealed value grows by.
pub const TAG_LEN: usize = 16;
/// Bytes of a keyed hash that are kept: 96 bits, so a million distinct words collide with
/// odds below 10^-16; 16 characters of [`DIGITS`] (a word averages about 6 letters, and the
/// index keys its rows by it).
const BLIND_BYTES: usize = 12;
/// Characters of a blinded word, 6 bits each (URL-safe base 64 digits).
const BLIND_CHARS: usize = BLIND_BYTES * 8 / 6;

/// The keys of one store.
pub struct AtRest {
    cipher: XChaCha20Poly1305,
    blind_key: Zeroizing<[u8; 32]>,
}

impl AtRest {
    /// The keys derived from this device's store key (kept in the passphrase-sealed key file).
    pub fn new(store_key: &StoreKey) -> Self {
        let seal_key = store_key.derive(SEAL_LABEL);
        Self {
            cipher: XChaCha20Poly1305::new(&(*seal_key).into()),
            blind_key: store_key.derive(BLIND_LABEL),
        }
    }

    /// `plain` sealed for row `row` of `table`: nonce ++ ciphertext ++ tag.
    pub fn seal(
        &self,
        table: &'static str,
        row: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(table, row);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Sealed { table })?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for row `row` of `table`: [`StoreError::Sealed`] if it was
    /// sealed under another key, for another row, or changed since.
    pub fn open(
        &self,
        table: &'static str,
        row: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let (nonce, ciphertext) = sealed
            .split_at_checked(NONCE_LEN)
            .filter(|(_, ciphertext)| ciphertext.len() >= TAG_LEN)
            .ok_or(StoreError::Sealed { table })?;
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        let aad = associated_data(table, row);
        self.cipher
            .decrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| StoreError::Sealed { table })
    }

    /// A record encoded and sealed for row `row` of `table`.
    pub fn seal_record<T: Serialize>(
        &self,
        table: &'static str,
        row: &[u8],
        record: &T,
    ) -> Result<Vec<u8>, StoreError> {
        self.seal(table, row, &Zeroizing::new(encode(record)))
    }

    /// A record sealed by [`AtRest::seal_record`], opened and decoded.
    pub fn open_record<T: DeserializeOwned>(
        &self,
        table: &'static str,
        row: &[u8],
        sealed: &[u8],
    ) -> Result<T, StoreError> {
        decode(table, &self.open(table, row, sealed)?)
    }

    /// What the search index stores for `word`: a keyed hash (16 characters), the same for the same
    /// word, revealing nothing of it without the key.
    pub fn blind(&self, word: &str) -> String {
        self.keyed_hash(b"word", word)
    }

    /// The row key a contact named `name` is stored under (a keyed hash, as words are, in
    /// another domain: a word and a name that are the same text do not match).
    pub fn blind_name(&self, name: &str) -> String {
        self.keyed_hash(b"contact", name)
    }

    fn keyed_hash(&self, domain: &[u8], text: &str) -> String {
        let mut mac =
            match <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.blind_key.as_slice()) {
                Ok(mac) => mac,
                // HMAC takes keys of any length.
                Err(_) => return String::new(),
            };
        mac.update(domain);
        mac.update(&[0]);
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(BLIND_CHARS);
        let kept = digest.get(..BLIND_BYTES).unwrap_or_default();
        for three in kept.chunks_exact(3) {
            let bits = u32::from(three[0]) << 16 | u32::from(three[1]) << 8 | u32::from(three[2]);
            for shift in [18, 12, 6, 0] {
                out.push(char::from(DIGITS[(bits >> shift) as usize & 63]));
            }
        }
        out
    }
}

const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The associated data of a value: its table's name, a zero byte, its row's key.
fn associated_data(table: &str, row: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(table.len() + 1 + row.len());
    aad.extend_from_slice(table.as_bytes());
    aad.push(0);
    aad.extend_from_slice(row);
    aad
}

/// A write transaction and the store's keys (redb's API through `Deref`).
pub struct WriteTxn<'a> {
    txn: WriteTransaction,
    /// The keys the store's values are sealed under.
    pub at_rest: &'a AtRest,
}

impl<'a> WriteTxn<'a> {
    /// Wraps a redb write transaction.
    pub fn new(txn: WriteTransaction, at_rest: &'a AtRest) -> Self {
        Self { txn, at_rest }
    }

    /// Commits it.
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.txn.commit()?)
    }
}

impl Deref for WriteTxn<'_> {
    type Target = WriteTransaction;

    fn deref(&self) -> &WriteTransaction {
        &self.txn
    }
}

/// A read transaction and the store's keys (redb's API through `Deref`).
pub struct ReadTxn<'a> {
    txn: ReadTransaction,
    /// The keys the store's values are sealed under.
    pub at_rest: &'a AtRest,
}

impl<'a> ReadTxn<'a> {
    /// Wraps a redb read transaction.
    pub fn new(txn: ReadTransaction, at_rest: &'a AtRest) -> Self {
        Self { txn, at_rest }
    }
}

impl Deref for ReadTxn<'_> {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        &self.txn
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Keys of a fresh identity: each call's differ.
    fn keys() -> AtRest {
        AtRest::new(tidings_keys::Identity::generate().store_key())
    }

    #[test]
    fn a_value_opens_only_with_its_key_table_and_row_and_grows_by_nonce_and_tag() {
        let at_rest = keys();
        let sealed = at_rest.seal("messages", b"row", b"secret text").unwrap();
        assert_eq!(sealed.len(), b"secret text".len() + NONCE_LEN + TAG_LEN);
        assert_eq!(
            at_rest
                .open("messages", b"row", &sealed)
                .unwrap()
                .as_slice(),
            b"secret text"
        );
        for (table, row, keys) in [
            ("messages", b"other".as_slice(), &at_rest),
            ("outbox", b"row".as_slice(), &at_rest),
            ("messages", b"row".as_slice(), &self::keys()),
        ] {
            assert!(matches!(
                keys.open(table, row, &sealed),
                Err(StoreError::Sealed { .. })
            ));
        }
        let mut tampered = sealed.clone();
        tampered[NONCE_LEN] ^= 1;
        assert!(at_rest.open("messages", b"row", &tampered).is_err());
        assert!(
            at_rest
                .open("messages", b"row", &sealed[..NONCE_LEN + 3])
                .is_err()
        );
        assert_ne!(
            sealed,
            at_rest.seal("messages", b"row", b"secret text").unwrap()
        );
    }

    #[test]
    fn blinded_words_are_stable_keyed_and_not_the_word() {
        let (one, two) = (keys(), keys());
        assert_eq!(one.blind("hello"), one.blind("hello"));
        assert_ne!(one.blind("hello"), one.blind("hallo"));
        assert_ne!(one.blind("hello"), two.blind("hello"));
        assert_eq!(one.blind("hello").len(), BLIND_CHARS);
        assert!(!one.blind("hello").contains("hello"));
        assert_ne!(one.blind("hello"), one.blind_name("hello"));
    }
}
