//! A device's long-term identity: account key, device key, the account's certificate for the device, and the local store key.

use std::{fmt, path::Path};

use ed25519_dalek::SigningKey;
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, DeviceId, DeviceList, Envelope, HomeRecord, IdentityKey,
    RawEnvelope, SignedDeviceList, SignedPreKey, UserId,
    group::{Descriptor, SignedDescriptor},
    limits::MAX_CARD_ADDRS,
};

use crate::{
    keyfile::{self, KeyFileError, Secrets},
    store_key::StoreKey,
};

/// Everything a device needs to prove who it is and to unlock its local crypto state.
///
/// Holds secrets and never hands them out: callers ask it to sign as the device or as the
/// account, and pass its [`StoreKey`] to the pickle functions. Both signing keys and the store
/// key are wiped from memory when the value is dropped, and `Debug` prints only the public ids.
/// With the `test-utils` feature, [`Identity::device_key`] and [`Identity::account_key`] hand
/// out the signing keys so tests can forge.
pub struct Identity {
    account: SigningKey,
    device: SigningKey,
    cert: DeviceCert,
    store_key: StoreKey,
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
        Identity {
            account,
            device,
            cert,
            store_key: StoreKey::generate(),
        }
    }

    /// Assembles an identity from its parts, checking that they belong together: the
    /// certificate verifies and names exactly these two keys.
    fn from_parts(
        account: SigningKey,
        device: SigningKey,
        cert: DeviceCert,
        store_key: StoreKey,
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

    /// The identity a key file's secrets describe, if they belong together.
    fn from_secrets(secrets: &Secrets) -> Result<Identity, &'static str> {
        Identity::from_parts(
            SigningKey::from_bytes(&secrets.account),
            SigningKey::from_bytes(&secrets.device),
            secrets.cert.clone(),
            StoreKey::from_secret(secrets.store),
        )
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

    /// The key that encrypts this device's pickled crypto state (Olm account, sessions).
    pub fn store_key(&self) -> &StoreKey {
        &self.store_key
    }

    /// Signs `envelope` as this device.
    pub fn sign_envelope(&self, envelope: &Envelope) -> RawEnvelope {
        envelope.sign(&self.device)
    }

    /// Signs a group descriptor as this account (an admin's change to a group).
    pub fn sign_descriptor(&self, descriptor: Descriptor) -> SignedDescriptor {
        SignedDescriptor::sign(&self.account, descriptor)
    }

    /// Signs, as this account, a home record naming `relay` (reachable at `addrs`) as home.
    pub fn sign_home_record(
        &self,
        relay: String,
        addrs: BoundedVec<String, MAX_CARD_ADDRS>,
        seq: u64,
        expires_at_ms: u64,
    ) -> HomeRecord {
        HomeRecord::sign(&self.account, relay, addrs, seq, expires_at_ms)
    }

    /// Signs a device list as this account; `None` on a device that does not hold the
    /// account key (then only a device that does can change the list).
    pub fn sign_device_list(&self, list: DeviceList) -> Option<SignedDeviceList> {
        Some(list.sign(&self.account))
    }

    /// The device key as a libp2p keypair: the device's identity in the Noise handshake.
    ///
    /// Fails only if libp2p stops taking 32-byte ed25519 secrets.
    pub fn libp2p_keypair(
        &self,
    ) -> Result<libp2p_identity::Keypair, libp2p_identity::DecodingError> {
        // `try_from_bytes` wipes the copy it is given.
        let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes(self.device.to_bytes())?;
        Ok(libp2p_identity::ed25519::Keypair::from(secret).into())
    }

    /// Signs an Olm identity key (curve25519) as this device.
    pub(crate) fn sign_identity_key(&self, curve25519: [u8; 32]) -> IdentityKey {
        IdentityKey::sign(&self.device, curve25519)
    }

    /// Signs a one-time or fallback key (curve25519) as this device.
    pub(crate) fn sign_pre_key(&self, curve25519: [u8; 32], fallback: bool) -> SignedPreKey {
        SignedPreKey::sign(&self.device, curve25519, fallback)
    }

    /// The device key, for tests that forge what only this device could sign.
    #[cfg(feature = "test-utils")]
    pub fn device_key(&self) -> &SigningKey {
        &self.device
    }

    /// The account key, for tests that forge what only this account could sign.
    #[cfg(feature = "test-utils")]
    pub fn account_key(&self) -> &SigningKey {
        &self.account
    }

    /// Another device of this account: a fresh device key certified by this account key now,
    /// and its own store key (what a device restored from an account export holds).
    #[cfg(feature = "test-utils")]
    pub fn another_device(&self) -> Identity {
        let device = SigningKey::generate(&mut rand::rng());
        let cert = DeviceCert::issue(
            &self.account,
            DeviceId::from(&device.verifying_key()),
            tidings_protocol::now_ms(),
        );
        Identity {
            account: self.account.clone(),
            device,
            cert,
            store_key: StoreKey::generate(),
        }
    }

    /// Writes the identity to a key file at `path`, replacing it atomically.
    ///
    /// With a passphrase the secrets are encrypted (Argon2id + XChaCha20-Poly1305); without one
    /// they are protected by the file's `0600` mode only. See [`crate::keyfile`].
    pub fn save(&self, path: &Path, passphrase: Option<&str>) -> Result<(), KeyFileError> {
        let secrets = Secrets {
            account: self.account.to_bytes(),
            device: self.device.to_bytes(),
            store: *self.store_key.secret(),
            cert: self.cert.clone(),
        };
        keyfile::save(secrets, path, passphrase)
    }

    /// Reads an identity from the key file at `path`.
    ///
    /// Fails with [`KeyFileError::PassphraseRequired`], [`KeyFileError::WrongPassphrase`] or
    /// [`KeyFileError::NotEncrypted`] when `passphrase` does not fit the file, and with
    /// [`KeyFileError::InsecurePermissions`] when the file is readable by group or others.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Identity, KeyFileError> {
        let secrets = keyfile::load(path, passphrase)?;
        Identity::from_secrets(&secrets).map_err(KeyFileError::Inconsistent)
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

/// Every secret field wipes itself on drop (`SigningKey` and `StoreKey` both do).
impl zeroize::ZeroizeOnDrop for Identity {}

#[cfg(test)]
mod tests {
    use tidings_protocol::{EnvelopeId, Kind, Recipient};
    use zeroize::ZeroizeOnDrop;

    use super::*;

    fn fixed() -> Identity {
        let account = SigningKey::from_bytes(&[0x11; 32]);
        let device = SigningKey::from_bytes(&[0x22; 32]);
        let cert = DeviceCert::issue(&account, DeviceId::from(&device.verifying_key()), 7);
        Identity::from_parts(account, device, cert, StoreKey::from_secret([0x33; 32])).unwrap()
    }

    fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

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
        assert_eq!(format!("{:?}", identity.store_key()), "StoreKey(..)");
        wiped_on_drop(&identity);
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
            UserId::from(&identity.account.verifying_key())
        );
        assert_eq!(
            identity.device_id(),
            DeviceId::from(&identity.device.verifying_key())
        );
        assert_ne!(identity.store_key().secret(), &[0; 32]);
        assert_ne!(
            identity.store_key().secret(),
            Identity::generate().store_key().secret()
        );
    }

    #[test]
    fn mismatched_parts_are_refused() {
        let account = SigningKey::from_bytes(&[1; 32]);
        let device = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[3; 32]);
        let cert = DeviceCert::issue(&account, DeviceId::from(&other.verifying_key()), 7);
        assert!(
            Identity::from_parts(account, device, cert, StoreKey::from_secret([0; 32])).is_err()
        );
    }

    #[test]
    fn a_key_file_with_mismatched_secrets_is_inconsistent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let identity = fixed();
        let mismatched = Secrets {
            account: identity.account.to_bytes(),
            device: [5; 32],
            store: [0x33; 32],
            cert: identity.cert().clone(),
        };
        keyfile::save(mismatched, &path, None).unwrap();
        assert!(matches!(
            Identity::load(&path, None),
            Err(KeyFileError::Inconsistent(_))
        ));
    }

    #[test]
    fn what_it_signs_verifies_as_this_device_and_account() {
        let identity = fixed();
        let envelope = Envelope {
            id: EnvelopeId::from_bytes([1; 16]),
            sender: identity.address(),
            recipient: Recipient::Direct(identity.address()),
            sent_at_ms: 7,
            kind: Kind::Message,
            body: b"hi".to_vec(),
        };
        let raw = identity.sign_envelope(&envelope);
        assert_eq!(raw, envelope.sign(&identity.device));
        assert_eq!(raw.open().map(|opened| opened.id), Ok(envelope.id));

        let record = identity.sign_home_record("relay".into(), BoundedVec::default(), 3, u64::MAX);
        assert_eq!(record.user, identity.user_id());
        assert_eq!(record.verify(0), Ok(()));

        assert_eq!(identity.sign_identity_key([9; 32]).verify(), Ok(()));
        assert_eq!(identity.sign_pre_key([9; 32], true).verify(), Ok(()));
    }

    #[test]
    fn the_libp2p_keypair_is_the_device_key() {
        let identity = fixed();
        let keypair = identity.libp2p_keypair().unwrap();
        let public = keypair.public().try_into_ed25519().unwrap().to_bytes();
        assert_eq!(&public, identity.device_id().as_bytes());
    }
}
