//! The store key: the random secret that encrypts a device's pickled crypto state at rest.

use std::fmt;

use hkdf::Hkdf;
use rand::Rng;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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

    /// A 32-byte subkey for one purpose, HKDF-SHA256 of this key with `label` as its info
    /// (different labels give independent keys; the store key itself never leaves).
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, &self.0).expand(label, out.as_mut_slice());
        out
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
    fn derived_keys_differ_by_label_and_key_and_repeat() {
        let key = StoreKey::from_secret([7; 32]);
        let one = key.derive(b"one");
        assert_eq!(*one, *key.derive(b"one"));
        assert_ne!(*one, *key.derive(b"two"));
        assert_ne!(*one, *StoreKey::from_secret([8; 32]).derive(b"one"));
        assert_ne!(*one, [7; 32]);
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
