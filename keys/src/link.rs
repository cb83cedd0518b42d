//! Linking a device: the new device's pending link (a fresh device key and the code's one-time secret) and the link package sealed under that secret.
//!
//! The package is sealed with XChaCha20-Poly1305 under the code's 32-byte secret, with the new
//! device's id as associated data: `nonce (24 B) || ciphertext`. The relay that carries it
//! cannot read or alter it, and a package left for one device does not open as another's.

use std::fmt;

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use ed25519_dalek::SigningKey;
use rand::Rng;
use tidings_protocol::{
    DeviceId, LinkCode, LinkPackage, LinkPackageError, LinkSecret,
    limits::MAX_LINK_PACKAGE_BYTES,
    link::{LINK_SECRET_LEN, MAX_LINK_PACKAGE_PLAINTEXT},
};
use zeroize::Zeroizing;

use crate::{identity::Identity, store_key::StoreKey};

const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;
/// Starts the associated data, separating this use of the code's secret from any other.
const LINK_AAD_MAGIC: &[u8; 4] = b"TDLK";

/// Why a link package could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The sealed package is shorter than a nonce and tag, or longer than
    /// [`MAX_LINK_PACKAGE_BYTES`].
    #[error("the sealed link package has a bad length ({0} bytes)")]
    BadLength(usize),
    /// The package does not open with this code's secret: another code, or it was altered.
    #[error("the link package does not open with this link code (wrong code, or altered)")]
    WrongSecret,
    /// The package to seal encodes to more than fits a sealed package.
    #[error("the link package is too large to seal ({0} bytes)")]
    TooLarge(usize),
    /// Encrypting the package failed.
    #[error("sealing the link package failed")]
    Encryption,
    /// It opened, but its content does not certify this device for one account.
    #[error(transparent)]
    Package(#[from] LinkPackageError),
}

fn cipher(secret: &LinkSecret) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(secret.as_bytes().into())
}

fn associated_data(device: DeviceId) -> Vec<u8> {
    let mut aad = LINK_AAD_MAGIC.to_vec();
    aad.extend_from_slice(device.as_bytes());
    aad
}

/// Seals `package` for the device of `code` under the code's secret (the approving side).
pub fn seal_package(code: &LinkCode, package: &LinkPackage) -> Result<Vec<u8>, LinkError> {
    let plaintext = Zeroizing::new(package.encode());
    if plaintext.len() > MAX_LINK_PACKAGE_PLAINTEXT {
        return Err(LinkError::TooLarge(plaintext.len()));
    }
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = associated_data(code.device);
    let ciphertext = cipher(&code.secret)
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| LinkError::Encryption)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens a package sealed for `device` under `secret`, and checks that it certifies `device`.
pub fn open_package(
    secret: &LinkSecret,
    device: DeviceId,
    sealed: &[u8],
) -> Result<LinkPackage, LinkError> {
    if sealed.len() < NONCE_LEN + TAG_LEN || sealed.len() > MAX_LINK_PACKAGE_BYTES {
        return Err(LinkError::BadLength(sealed.len()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let mut nonce_bytes = [0u8; NONCE_LEN];
    nonce_bytes.copy_from_slice(nonce);
    let aad = associated_data(device);
    let plaintext = Zeroizing::new(
        cipher(secret)
            .decrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| LinkError::WrongSecret)?,
    );
    let package = LinkPackage::decode(&plaintext)?;
    package.check_for(device)?;
    Ok(package)
}

/// A device waiting to be linked: its fresh device key (already its libp2p identity, so it can
/// reach the relay before it is registered), the one-time secret of its code, and its future
/// store key. Wiped on drop, redacted in `Debug`.
pub struct PendingLink {
    device: SigningKey,
    secret: LinkSecret,
    store_key: StoreKey,
}

impl PendingLink {
    /// A fresh device key, link secret and store key.
    pub fn generate() -> PendingLink {
        let mut rng = rand::rng();
        let mut secret = [0u8; LINK_SECRET_LEN];
        rng.fill_bytes(&mut secret);
        PendingLink {
            device: SigningKey::generate(&mut rng),
            secret: LinkSecret::from_bytes(secret),
            store_key: StoreKey::generate(),
        }
    }

    /// The new device's id.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from(&self.device.verifying_key())
    }

    /// The code to show: this device's id and the secret that seals its package.
    pub fn code(&self) -> LinkCode {
        LinkCode {
            device: self.device_id(),
            secret: self.secret.clone(),
        }
    }

    /// The device key as a libp2p keypair, to reach the relay while waiting.
    pub fn libp2p_keypair(
        &self,
    ) -> Result<libp2p_identity::Keypair, libp2p_identity::DecodingError> {
        let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes(self.device.to_bytes())?;
        Ok(libp2p_identity::ed25519::Keypair::from(secret).into())
    }

    /// Opens the package the approving device left, and becomes a linked device of its
    /// account: this device key, the certificate from the package, and no account key.
    pub fn open(&self, sealed: &[u8]) -> Result<(Identity, LinkPackage), LinkError> {
        let package = open_package(&self.secret, self.device_id(), sealed)?;
        let identity = Identity::from_parts(
            None,
            self.device.clone(),
            package.cert.clone(),
            StoreKey::from_secret(*self.store_key.secret()),
        )
        .map_err(|_| LinkError::Package(LinkPackageError::WrongDevice))?;
        Ok((identity, package))
    }
}

impl fmt::Debug for PendingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLink")
            .field("device", &self.device_id())
            .finish_non_exhaustive()
    }
}

/// Every secret field wipes itself on drop.
impl zeroize::ZeroizeOnDrop for PendingLink {}
