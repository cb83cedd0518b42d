//! A device's long-term identity: the account key (on the device that holds it), the device key, the account's certificate for the device, and the local store key.

use std::{fmt, path::Path};

use ed25519_dalek::SigningKey;
use tidings_protocol::{
    Address, BoundedVec, DeviceCert, DeviceId, DeviceList, Envelope, HomeRecord, IdentityKey,
    RawEnvelope, SignedDeviceList, SignedPreKey, UserId,
    group::{Descriptor, SignedDescriptor},
    limits::MAX_CARD_ADDRS,
};
use zeroize::Zeroizing;

use crate::{
    keyfile::{
        self, KeyFileError, Secrets,
        export::{self, AccountSecret},
    },
    store_key::StoreKey,
};

/// An operation that needs the account key was asked of a linked device, which holds only its
/// own device key and certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this device was linked and does not hold the account key; do this on the device that \
     holds it (made by `tidings init`, or restored with `tidings init --import`)"
)]
pub struct NoAccountKey;

/// Why the account could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// This device does not hold the account key (it was linked).
    #[error(transparent)]
    NoAccountKey(#[from] NoAccountKey),
    /// Writing the export file failed, or the passphrase is empty.
    #[error(transparent)]
    File(#[from] KeyFileError),
}

/// Everything a device needs to prove who it is and to unlock its local crypto state.
///
/// Holds secrets and never hands them out: callers ask it to sign as the device or as the
/// account, and pass its [`StoreKey`] to the pickle functions. Both signing keys and the store
/// key are wiped from memory when the value is dropped, and `Debug` prints only the public ids.
/// With the `test-utils` feature, [`Identity::device_key`] and [`Identity::account_key`] hand
/// out the signing keys so tests can forge.
///
/// A *primary* device holds the account key; a *linked* one does not, and the account-key
/// operations ([`Identity::sign_home_record`], [`Identity::sign_device_list`],
/// [`Identity::certify_device`]) answer [`NoAccountKey`] there. Group descriptors a linked
/// device signs with its device key and certificate ([`Identity::sign_descriptor`]).
pub struct Identity {
    account: Option<SigningKey>,
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
            account: Some(account),
            device,
            cert,
            store_key: StoreKey::generate(),
        }
    }

    /// A fresh device key certified now by `account`, and a random store key: a new device of
    /// an account whose key was restored from an export.
    pub(crate) fn new_device_of(account: SigningKey) -> Identity {
        let device = SigningKey::generate(&mut rand::rng());
        let cert = DeviceCert::issue(
            &account,
            DeviceId::from(&device.verifying_key()),
            tidings_protocol::now_ms(),
        );
        Identity {
            account: Some(account),
            device,
            cert,
            store_key: StoreKey::generate(),
        }
    }

    /// Assembles an identity from its parts, checking that they belong together: the
    /// certificate verifies, names this device key and, if present, this account key.
    pub(crate) fn from_parts(
        account: Option<SigningKey>,
        device: SigningKey,
        cert: DeviceCert,
        store_key: StoreKey,
    ) -> Result<Identity, &'static str> {
        if account
            .as_ref()
            .is_some_and(|account| cert.user != UserId::from(&account.verifying_key()))
        {
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
            secrets.account.as_ref().map(SigningKey::from_bytes),
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

    /// Whether this device holds the account key (a primary device) or not (a linked one).
    pub fn holds_account_key(&self) -> bool {
        self.account.is_some()
    }

    fn account(&self) -> Result<&SigningKey, NoAccountKey> {
        self.account.as_ref().ok_or(NoAccountKey)
    }

    /// Signs a group descriptor as this account (an admin's change to a group): with the
    /// account key where this device holds it, else with the device key and certificate.
    pub fn sign_descriptor(&self, descriptor: Descriptor) -> SignedDescriptor {
        match &self.account {
            Some(account) => SignedDescriptor::sign(account, descriptor),
            None => SignedDescriptor::sign_as_device(&self.device, self.cert.clone(), descriptor),
        }
    }

    /// Signs, as this account, a home record naming `relay` (reachable at `addrs`) as home.
    pub fn sign_home_record(
        &self,
        relay: String,
        addrs: BoundedVec<String, MAX_CARD_ADDRS>,
        seq: u64,
        expires_at_ms: u64,
    ) -> Result<HomeRecord, NoAccountKey> {
        Ok(HomeRecord::sign(
            self.account()?,
            relay,
            addrs,
            seq,
            expires_at_ms,
        ))
    }

    /// Signs a device list as this account (it verifies only if it names this account).
    pub fn sign_device_list(&self, list: DeviceList) -> Result<SignedDeviceList, NoAccountKey> {
        Ok(list.sign(self.account()?))
    }

    /// Certifies `device` as a device of this account, now (linking a new device).
    pub fn certify_device(&self, device: DeviceId) -> Result<DeviceCert, NoAccountKey> {
        Ok(DeviceCert::issue(
            self.account()?,
            device,
            tidings_protocol::now_ms(),
        ))
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
    ///
    /// # Panics
    /// On a linked device, which has none: a test asking for it has a bug.
    #[cfg(feature = "test-utils")]
    #[allow(
        clippy::expect_used,
        reason = "a test hook; a linked device has no account key"
    )]
    pub fn account_key(&self) -> &SigningKey {
        self.account
            .as_ref()
            .expect("account_key() asked of a linked device")
    }

    /// Another device of this account: a fresh device key certified by this account key now,
    /// and its own store key (what a device restored from an account export holds).
    #[cfg(feature = "test-utils")]
    #[allow(
        clippy::expect_used,
        reason = "a test hook; a linked device has no account key"
    )]
    pub fn another_device(&self) -> Identity {
        let account = self
            .account
            .clone()
            .expect("another_device() asked of a linked device");
        Identity::new_device_of(account)
    }

    /// Writes the identity to a key file at `path`, replacing it atomically.
    ///
    /// With a passphrase the secrets are encrypted (Argon2id + XChaCha20-Poly1305); without one
    /// they are protected by the file's `0600` mode only. See [`crate::keyfile`].
    pub fn save(&self, path: &Path, passphrase: Option<&str>) -> Result<(), KeyFileError> {
        keyfile::save(self.secrets(), path, passphrase)
    }

    /// The key file [`Identity::save`] writes, as bytes (for storage that is not a file
    /// system path, such as the browser's): the same format and passphrase sealing. Wiped on
    /// drop.
    pub fn to_file_bytes(
        &self,
        passphrase: Option<&str>,
    ) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
        keyfile::to_bytes(self.secrets(), passphrase)
    }

    /// Reads an identity from key file bytes (as [`Identity::to_file_bytes`] or a key file
    /// written by [`Identity::save`] holds them), with the passphrase errors of
    /// [`Identity::load`]; there is no file mode to check.
    pub fn from_file_bytes(
        bytes: &[u8],
        passphrase: Option<&str>,
    ) -> Result<Identity, KeyFileError> {
        let secrets = keyfile::from_bytes(bytes, passphrase)?;
        Identity::from_secrets(&secrets).map_err(KeyFileError::Inconsistent)
    }

    fn secrets(&self) -> Secrets {
        Secrets {
            account: self.account.as_ref().map(SigningKey::to_bytes),
            device: self.device.to_bytes(),
            store: *self.store_key.secret(),
            cert: self.cert.clone(),
        }
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

    /// Writes the account key to `path`, sealed under `passphrase` (Argon2id +
    /// XChaCha20-Poly1305, as a key file), in a `0600` file: what restores the account on a new
    /// device if every device is lost. Only a device holding the account key can export it.
    pub fn export_account(&self, path: &Path, passphrase: &str) -> Result<(), ExportError> {
        let secret = AccountSecret {
            account: self.account()?.to_bytes(),
        };
        export::save(&secret, self.user_id(), path, passphrase)?;
        Ok(())
    }

    /// A new device of the account exported to `path`: the account key from the export, a
    /// fresh device key certified by it now, and a fresh store key. The caller saves it as its
    /// key file and registers it with a device list naming it.
    pub fn import_account(path: &Path, passphrase: &str) -> Result<Identity, KeyFileError> {
        let (user, secret) = export::load(path, passphrase)?;
        let account = SigningKey::from_bytes(&secret.account);
        if UserId::from(&account.verifying_key()) != user {
            return Err(KeyFileError::Inconsistent(
                "the exported key is not the key of the user the export names",
            ));
        }
        Ok(Identity::new_device_of(account))
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
        Identity::from_parts(
            Some(account),
            device,
            cert,
            StoreKey::from_secret([0x33; 32]),
        )
        .unwrap()
    }

    fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn key_file_bytes_round_trip_with_the_passphrase_rules_of_files() {
        let identity = fixed();
        let sealed = identity.to_file_bytes(Some("correct horse")).unwrap();
        let opened = Identity::from_file_bytes(&sealed, Some("correct horse")).unwrap();
        assert_eq!(opened.address(), identity.address());
        assert_eq!(opened.store_key().secret(), identity.store_key().secret());
        assert!(matches!(
            Identity::from_file_bytes(&sealed, Some("wrong")),
            Err(KeyFileError::WrongPassphrase)
        ));
        assert!(matches!(
            Identity::from_file_bytes(&sealed, None),
            Err(KeyFileError::PassphraseRequired)
        ));
        let plain = identity.to_file_bytes(None).unwrap();
        assert!(matches!(
            Identity::from_file_bytes(&plain, Some("x")),
            Err(KeyFileError::NotEncrypted)
        ));
        // The bytes are exactly what a key file on disk holds.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        identity.save(&path, Some("pass")).unwrap();
        let from_disk = Identity::from_file_bytes(&std::fs::read(&path).unwrap(), Some("pass"));
        assert_eq!(from_disk.unwrap().address(), identity.address());
        Identity::load(&path, Some("pass")).unwrap();
        assert!(Identity::from_file_bytes(&[0u8; 10], None).is_err());
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
            UserId::from(&identity.account.as_ref().unwrap().verifying_key())
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
            Identity::from_parts(Some(account), device, cert, StoreKey::from_secret([0; 32]))
                .is_err()
        );
    }

    #[test]
    fn a_key_file_with_mismatched_secrets_is_inconsistent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let identity = fixed();
        let mismatched = Secrets {
            account: identity.account.as_ref().map(SigningKey::to_bytes),
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
            blobs: Default::default(),
        };
        let raw = identity.sign_envelope(&envelope);
        assert_eq!(raw, envelope.sign(&identity.device));
        assert_eq!(raw.open().map(|opened| opened.id), Ok(envelope.id));

        let record = identity
            .sign_home_record("relay".into(), BoundedVec::default(), 3, u64::MAX)
            .unwrap();
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
