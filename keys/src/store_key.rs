//! The store key: the random secret that encrypts a device's pickled crypto state at rest.

use std::fmt;

use rand::Rng;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The key that encrypts this device's pickled Olm account, Olm sessions and Megolm sessions.
///
/// Opaque outside this crate: it is handed to the pickle functions
/// ([`crate::OlmAccount::pickle`], [`crate::PeerSessions::to_bytes`],
/// [`crate::GroupOutbound::pickle`], ...) and never yields its bytes. Wiped on drop; `Debug`
/// prints no key material.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// A fresh random key.
    pub(crate) fn generate() -> StoreKey {
        let mut key = StoreKey([0; 32]);
        rand::rng().fill_bytes(&mut key.0);
        key
    }

    /// Takes the bytes of a key read from the key file.
    pub(crate) fn from_secret(bytes: [u8; 32]) -> StoreKey {
        StoreKey(bytes)
    }

    /// The key as vodozemac's pickle functions take it.
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key with the given bytes, for tests that pickle under fixed or wrong keys.
    #[cfg(feature = "test-utils")]
    pub fn from_bytes(bytes: [u8; 32]) -> StoreKey {
        StoreKey(bytes)
    }

    /// The key's bytes, for tests that compare keys.
    #[cfg(feature = "test-utils")]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn debug_is_redacted_and_the_key_is_wiped_on_drop() {
        let key = StoreKey::from_secret([0xab; 32]);
        assert_eq!(format!("{key:?}"), "StoreKey(..)");
        assert_eq!(format!("{key:#?}"), "StoreKey(..)");
        wiped_on_drop(&key);
    }

    #[test]
    fn generated_keys_are_random() {
        let (one, two) = (StoreKey::generate(), StoreKey::generate());
        assert_ne!(one.secret(), &[0; 32]);
        assert_ne!(one.secret(), two.secret());
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut key = StoreKey::from_secret([0xab; 32]);
        key.zeroize();
        assert_eq!(key.secret(), &[0; 32]);
    }
}
