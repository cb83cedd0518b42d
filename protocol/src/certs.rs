//! Signed statements about keys: device certificates, Olm identity keys and prekeys.
//!
//! Each statement is signed over `MAGIC || CBOR(fields)`; the distinct magics keep one kind of
//! signature from ever being valid as another.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    codec::{self, DecodeError},
    ids::{Address, DeviceId, UserId},
};

const CERT_MAGIC: &[u8; 4] = b"TDC1";
const IDENTITY_MAGIC: &[u8; 4] = b"TDK1";
const PREKEY_MAGIC: &[u8; 4] = b"TDP1";

/// Why a signed statement was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// A key in the statement is not a valid ed25519 key.
    #[error("invalid signing key")]
    BadKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The statement is about another user or device than expected.
    #[error("statement is for {0}")]
    WrongSubject(&'static str),
    /// The statement does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

fn signed_bytes<T: Serialize>(magic: &[u8; 4], fields: &T) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    codec::encode_into(fields, &mut bytes);
    bytes
}

fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> Result<(), CertError> {
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| CertError::BadSignature)
}

/// The account key's statement that a device belongs to the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// The account.
    #[serde(rename = "u")]
    pub user: UserId,
    /// The certified device.
    #[serde(rename = "d")]
    pub device: DeviceId,
    /// When the account signed it, in milliseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub issued_at_ms: u64,
    /// Account key's signature.
    #[serde(rename = "s", with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl DeviceCert {
    /// Certifies `device` as a device of the account holding `account_key`.
    pub fn issue(account_key: &SigningKey, device: DeviceId, issued_at_ms: u64) -> Self {
        let user = UserId::from(&account_key.verifying_key());
        let message = signed_bytes(CERT_MAGIC, &(user, device, issued_at_ms));
        Self {
            user,
            device,
            issued_at_ms,
            signature: account_key.sign(&message).to_bytes(),
        }
    }

    /// Checks the account key's signature.
    pub fn verify(&self) -> Result<(), CertError> {
        let key = self.user.verifying_key().map_err(|_| CertError::BadKey)?;
        let message = signed_bytes(CERT_MAGIC, &(self.user, self.device, self.issued_at_ms));
        verify(&key, &message, &self.signature)
    }

    /// The (user, device) address this certificate vouches for.
    pub fn address(&self) -> Address {
        Address {
            user: self.user,
            device: self.device,
        }
    }
}

/// A device's Olm identity key (curve25519), signed by the device key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityKey {
    /// The device whose Olm account this is.
    #[serde(rename = "d")]
    pub device: DeviceId,
    /// The curve25519 identity key of its Olm account.
    #[serde(rename = "k", with = "serde_bytes")]
    pub curve25519: [u8; 32],
    /// Device key's signature.
    #[serde(rename = "s", with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl IdentityKey {
    /// Signs the Olm identity key with the device key.
    pub fn sign(device_key: &SigningKey, curve25519: [u8; 32]) -> Self {
        let device = DeviceId::from(&device_key.verifying_key());
        let message = signed_bytes(
            IDENTITY_MAGIC,
            &(device, serde_bytes::Bytes::new(&curve25519)),
        );
        Self {
            device,
            curve25519,
            signature: device_key.sign(&message).to_bytes(),
        }
    }

    /// Checks the device key's signature.
    pub fn verify(&self) -> Result<(), CertError> {
        let key = self.device.verifying_key().map_err(|_| CertError::BadKey)?;
        let message = signed_bytes(
            IDENTITY_MAGIC,
            &(self.device, serde_bytes::Bytes::new(&self.curve25519)),
        );
        verify(&key, &message, &self.signature)
    }
}

/// A curve25519 prekey (one-time or fallback) of a device, signed by the device key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPreKey {
    /// The device that can answer sessions built on this key.
    #[serde(rename = "d")]
    pub device: DeviceId,
    /// The curve25519 public key.
    #[serde(rename = "k", with = "serde_bytes")]
    pub curve25519: [u8; 32],
    /// True for the fallback key handed out when one-time keys run out.
    #[serde(rename = "f")]
    pub fallback: bool,
    /// Device key's signature.
    #[serde(rename = "s", with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl SignedPreKey {
    /// Signs a prekey with the device key.
    pub fn sign(device_key: &SigningKey, curve25519: [u8; 32], fallback: bool) -> Self {
        let device = DeviceId::from(&device_key.verifying_key());
        let message = signed_bytes(
            PREKEY_MAGIC,
            &(device, serde_bytes::Bytes::new(&curve25519), fallback),
        );
        Self {
            device,
            curve25519,
            fallback,
            signature: device_key.sign(&message).to_bytes(),
        }
    }

    /// Checks the device key's signature.
    pub fn verify(&self) -> Result<(), CertError> {
        let key = self.device.verifying_key().map_err(|_| CertError::BadKey)?;
        let message = signed_bytes(
            PREKEY_MAGIC,
            &(
                self.device,
                serde_bytes::Bytes::new(&self.curve25519),
                self.fallback,
            ),
        );
        verify(&key, &message, &self.signature)
    }
}

/// What a client needs to open an Olm session to another user's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBundle {
    /// The account's certificate for the device.
    #[serde(rename = "c")]
    pub cert: DeviceCert,
    /// The device's Olm identity key.
    #[serde(rename = "i")]
    pub identity: IdentityKey,
    /// A one-time key, or the fallback key when none is left.
    #[serde(rename = "p")]
    pub prekey: SignedPreKey,
}

impl KeyBundle {
    /// Checks every signature and that all parts speak of one device of `user`.
    pub fn verify_for(&self, user: &UserId) -> Result<(), CertError> {
        if self.cert.user != *user {
            return Err(CertError::WrongSubject("another user"));
        }
        self.cert.verify()?;
        if self.identity.device != self.cert.device || self.prekey.device != self.cert.device {
            return Err(CertError::WrongSubject("another device"));
        }
        self.identity.verify()?;
        self.prekey.verify()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> (KeyBundle, UserId) {
        let account = SigningKey::from_bytes(&[3; 32]);
        let device = SigningKey::from_bytes(&[4; 32]);
        let device_id = DeviceId::from(&device.verifying_key());
        let cert = DeviceCert::issue(&account, device_id, 42);
        let user = cert.user;
        let bundle = KeyBundle {
            cert,
            identity: IdentityKey::sign(&device, [5; 32]),
            prekey: SignedPreKey::sign(&device, [6; 32], false),
        };
        (bundle, user)
    }

    #[test]
    fn a_good_bundle_verifies() {
        let (bundle, user) = bundle();
        assert_eq!(bundle.verify_for(&user), Ok(()));
    }

    #[test]
    fn swapped_keys_and_wrong_users_are_rejected() {
        let (mut bundle, user) = bundle();
        let other = UserId::from(&SigningKey::from_bytes(&[9; 32]).verifying_key());
        assert_eq!(
            bundle.verify_for(&other),
            Err(CertError::WrongSubject("another user"))
        );
        bundle.prekey.curve25519 = [7; 32];
        assert_eq!(bundle.verify_for(&user), Err(CertError::BadSignature));
        let (mut bundle, user) = self::bundle();
        bundle.prekey.fallback = true;
        assert_eq!(bundle.verify_for(&user), Err(CertError::BadSignature));
    }

    #[test]
    fn a_prekey_signature_is_not_an_identity_signature() {
        let device = SigningKey::from_bytes(&[4; 32]);
        let prekey = SignedPreKey::sign(&device, [5; 32], false);
        let forged = IdentityKey {
            device: prekey.device,
            curve25519: prekey.curve25519,
            signature: prekey.signature,
        };
        assert_eq!(forged.verify(), Err(CertError::BadSignature));
    }
}
