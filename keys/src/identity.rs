//! A device's long-term identity: account key, device key, the account's certificate for the device, and the local store key.

use std::{fmt, path::Path};

use ed25519_dalek::SigningKey;
use rand::Rng;
use tidings_protocol::{Address, DeviceCert, DeviceId, UserId};
use zeroize::Zeroizing;

use crate::keyfile::{self, KeyFileError};

/// Everything a device needs to prove who it is and to unlock its local crypto state.
///
/// Holds secrets: both signing keys and the store key are wiped from memory when the value is
/// dropped, and `Debug` prints only the public ids.
pub struct Identity {
    account: SigningKey,
    device: SigningKey,
    cert: DeviceCert,
    store_key: Zeroizing<[u8; 32]>,
}

impl Identity {
    /// A fresh account key, a fresh device key certified by it now, and a random store key.
    pub fn generate() -> Identity {
        let mut rng = rand::rng();
        let account = SigningKey::generate(&mut rng);
        let device = SigningKey::generate(&mut rng);
        let cert = DeviceCert::issue(
            &account,
            DeviceId::from(&device.verifying_key()),
            tidings_protocol::now_ms(),
        );
        let mut store_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(store_key.as_mut_slice());
        Identity {
            account,
            device,
            cert,
            store_key,
        }
    }

    /// Assembles an identity from its parts, checking that they belong together: the
    /// certificate verifies and names exactly these two keys.
    pub(crate) fn from_parts(
        account: SigningKey,
        device: SigningKey,
        cert: DeviceCert,
        store_key: Zeroizing<[u8; 32]>,
    ) -> Result<Identity, &'static str> {
        if cert.user != UserId::from(&account.verifying_key()) {
            return Err("the certificate names another account key");
        }
        if cert.device != DeviceId::from(&device.verifying_key()) {
            return Err("the certificate names another device key");
        }
        cert.verify()
            .map_err(|_| "the certificate's signature does not verify")?;
        Ok(Identity {
            account,
            device,
            cert,
            store_key,
        })
    }

    /// The user id: the public half of the account key.
    pub fn user_id(&self) -> UserId {
        self.cert.user
    }

    /// The device id: the public half of the device key.
    pub fn device_id(&self) -> DeviceId {
        self.cert.device
    }

    /// This device's (user, device) address.
    pub fn address(&self) -> Address {
        self.cert.address()
    }

    /// The account's certificate for this device.
    pub fn cert(&self) -> &DeviceCert {
        &self.cert
    }

    /// The device key: signs envelopes and key statements, and is the device's libp2p identity.
    pub fn device_key(&self) -> &SigningKey {
        &self.device
    }

    /// The account key: certifies devices and signs home records.
    pub fn account_key(&self) -> &SigningKey {
        &self.account
    }

    /// The random key that encrypts this device's pickled crypto state (Olm account, sessions).
    pub fn store_key(&self) -> &[u8; 32] {
        &self.store_key
    }

    /// Writes the identity to a key file at `path`, replacing it atomically.
    ///
    /// With a passphrase the secrets are encrypted (Argon2id + XChaCha20-Poly1305); without one
    /// they are protected by the file's `0600` mode only. See [`crate::keyfile`].
    pub fn save(&self, path: &Path, passphrase: Option<&str>) -> Result<(), KeyFileError> {
        keyfile::save(self, path, passphrase)
    }

    /// Reads an identity from the key file at `path`.
    ///
    /// Fails with [`KeyFileError::PassphraseRequired`], [`KeyFileError::WrongPassphrase`] or
    /// [`KeyFileError::NotEncrypted`] when `passphrase` does not fit the file, and with
    /// [`KeyFileError::InsecurePermissions`] when the file is readable by group or others.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Identity, KeyFileError> {
        keyfile::load(path, passphrase)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user_id())
            .field("device", &self.device_id())
            .finish_non_exhaustive()
    }
}

/// Every secret field wipes itself on drop (`SigningKey` and `Zeroizing` both do).
impl zeroize::ZeroizeOnDrop for Identity {}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Identity {
        let account = SigningKey::from_bytes(&[0x11; 32]);
        let device = SigningKey::from_bytes(&[0x22; 32]);
        let cert = DeviceCert::issue(&account, DeviceId::from(&device.verifying_key()), 7);
        Identity::from_parts(account, device, cert, Zeroizing::new([0x33; 32])).unwrap()
    }

    #[test]
    fn debug_shows_ids_and_no_secrets() {
        let identity = fixed();
        let printed = format!("{identity:?}");
        assert_eq!(
            printed,
            format!(
                "Identity {{ user: UserId({}), device: DeviceId({}), .. }}",
                identity.user_id(),
                identity.device_id()
            )
        );
        for secret in [[0x11u8; 32], [0x22; 32], [0x33; 32]] {
            assert!(!printed.contains(&format!("{secret:?}")));
            assert!(!printed.contains(&hex(&secret)));
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn generated_identity_is_consistent() {
        let identity = Identity::generate();
        assert_eq!(identity.cert().verify(), Ok(()));
        assert_eq!(
            identity.user_id(),
            UserId::from(&identity.account_key().verifying_key())
        );
        assert_eq!(
            identity.device_id(),
            DeviceId::from(&identity.device_key().verifying_key())
        );
        assert_ne!(identity.store_key(), &[0; 32]);
        assert_ne!(identity.store_key(), Identity::generate().store_key());
    }

    #[test]
    fn mismatched_parts_are_refused() {
        let account = SigningKey::from_bytes(&[1; 32]);
        let device = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[3; 32]);
        let cert = DeviceCert::issue(&account, DeviceId::from(&other.verifying_key()), 7);
        assert!(Identity::from_parts(account, device, cert, Zeroizing::new([0; 32])).is_err());
    }
}
