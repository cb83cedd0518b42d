//! Linking a new device: the link code it shows (its device id and a one-time secret) and the package the approving device seals for it.
//!
//! The new device prints a [`LinkCode`]; a device holding the account key reads it, certifies
//! the device, and leaves a [`LinkPackage`] sealed with the code's secret at the home relay
//! (`Request::PutLink`). The new device takes it (`Request::TakeLink`), opens it and registers.
//! Sealing is done by `tidings-keys`; this module holds only the wire forms.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{
    certs::{CertError, DeviceCert},
    codec::{self, BoundedVec, DecodeError},
    ids::{Address, DeviceId, UserId},
    limits::{MAX_CARD_ADDRS, MAX_DEVICE_NAME_LEN, MAX_LINK_PACKAGE_BYTES},
};

/// Prefix of a link code's text form.
pub const LINK_CODE_PREFIX: &str = "tidings-link:";

/// Length of the one-time secret a link code carries.
pub const LINK_SECRET_LEN: usize = 32;

/// Longest link code text accepted (prefix plus base58 of 64 bytes, which takes at most 88
/// characters), checked before decoding anything.
pub const MAX_LINK_CODE_LEN: usize = LINK_CODE_PREFIX.len() + 96;

/// Largest encoded [`LinkPackage`] accepted: what fits in a sealed package of
/// [`MAX_LINK_PACKAGE_BYTES`] after the nonce and tag of the seal.
pub const MAX_LINK_PACKAGE_PLAINTEXT: usize = MAX_LINK_PACKAGE_BYTES - 64;

/// Why a link code's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkCodeError {
    /// The text is longer than [`MAX_LINK_CODE_LEN`].
    #[error("link code of {len} characters is too long")]
    TooLong {
        /// How long the text was.
        len: usize,
    },
    /// The text does not start with [`LINK_CODE_PREFIX`].
    #[error("not a link code (expected it to start with {LINK_CODE_PREFIX})")]
    MissingPrefix,
    /// The part after the prefix is not base58.
    #[error("link code is not base58")]
    NotBase58,
    /// The decoded code is not 64 bytes (device id and secret).
    #[error("link code holds {0} bytes, expected 64")]
    WrongLength(usize),
    /// The device id in the code is not an ed25519 public key.
    #[error("link code names no valid device key")]
    NotAKey,
}

/// The one-time secret of a link code: the key that seals the link package. Wiped on drop,
/// redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct LinkSecret([u8; LINK_SECRET_LEN]);

impl LinkSecret {
    /// Wraps secret bytes (a caller draws them from a CSPRNG).
    pub const fn from_bytes(bytes: [u8; LINK_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret bytes, for the cipher that seals or opens a package.
    pub fn as_bytes(&self) -> &[u8; LINK_SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// What a new device shows to be linked: its device id and a one-time secret. Text form
/// `tidings-link:<base58(device id || secret)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// The device asking to be linked (its libp2p identity).
    pub device: DeviceId,
    /// Seals the link package; only the holder of the code can open it.
    pub secret: LinkSecret,
}

impl fmt::Display for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = zeroize::Zeroizing::new([0u8; 64]);
        bytes[..32].copy_from_slice(self.device.as_bytes());
        bytes[32..].copy_from_slice(self.secret.as_bytes());
        f.write_str(LINK_CODE_PREFIX)?;
        f.write_str(&bs58::encode(&bytes[..]).into_string())
    }
}

impl FromStr for LinkCode {
    type Err = LinkCodeError;

    fn from_str(text: &str) -> Result<Self, LinkCodeError> {
        let text = text.trim();
        if text.len() > MAX_LINK_CODE_LEN {
            return Err(LinkCodeError::TooLong { len: text.len() });
        }
        let body = text
            .strip_prefix(LINK_CODE_PREFIX)
            .ok_or(LinkCodeError::MissingPrefix)?;
        let bytes = zeroize::Zeroizing::new(
            bs58::decode(body)
                .into_vec()
                .map_err(|_| LinkCodeError::NotBase58)?,
        );
        if bytes.len() != 64 {
            return Err(LinkCodeError::WrongLength(bytes.len()));
        }
        let mut device = [0u8; 32];
        device.copy_from_slice(&bytes[..32]);
        let mut secret = [0u8; LINK_SECRET_LEN];
        secret.copy_from_slice(&bytes[32..]);
        let device = DeviceId::from_bytes(device);
        device.verifying_key().map_err(|_| LinkCodeError::NotAKey)?;
        Ok(LinkCode {
            device,
            secret: LinkSecret(secret),
        })
    }
}

/// Why an opened link package cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkPackageError {
    /// It does not decode or is too large.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The certificate does not verify.
    #[error("the link package's certificate is invalid: {0}")]
    BadCertificate(#[from] CertError),
    /// The certificate is for another device than the one being linked.
    #[error("the link package certifies another device")]
    WrongDevice,
    /// The certificate, the user id and the approving device name different accounts.
    #[error("the link package names two different accounts")]
    WrongUser,
    /// The package names no relay address to reach the home relay at.
    #[error("the link package names no relay address")]
    NoRelayAddress,
}

/// What the approving device tells the new one: its certificate, the account and where the
/// home relay is. Sealed with the link code's secret before it reaches the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPackage {
    /// The account's certificate for the new device.
    #[serde(rename = "c")]
    pub cert: DeviceCert,
    /// The account.
    #[serde(rename = "u")]
    pub user: UserId,
    /// The home relay's libp2p peer id (text form).
    #[serde(rename = "r")]
    pub relay: String,
    /// The home relay's listen addresses (multiaddr text).
    #[serde(rename = "a")]
    pub relay_addrs: BoundedVec<String, MAX_CARD_ADDRS>,
    /// The device that approved the link (it holds the account key).
    #[serde(rename = "p")]
    pub approver: Address,
    /// The name the account gave the new device in its device list.
    #[serde(rename = "n")]
    pub name: String,
    /// The version of the device list that names the new device (published before the package
    /// was left), so the new device can tell a stale list from the relay.
    #[serde(rename = "v")]
    pub list_version: u64,
}

impl LinkPackage {
    /// Encodes for sealing.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes at most [`MAX_LINK_PACKAGE_PLAINTEXT`] bytes (no signature check; see
    /// [`Self::check_for`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, LinkPackageError> {
        let package: LinkPackage = codec::decode(bytes, MAX_LINK_PACKAGE_PLAINTEXT)?;
        if package.name.len() > MAX_DEVICE_NAME_LEN {
            return Err(DecodeError::Invalid {
                field: "name",
                reason: "too long",
            }
            .into());
        }
        Ok(package)
    }

    /// Checks that the package is a verified certificate for `device` of one account.
    pub fn check_for(&self, device: DeviceId) -> Result<(), LinkPackageError> {
        self.cert.verify()?;
        if self.cert.device != device {
            return Err(LinkPackageError::WrongDevice);
        }
        if self.cert.user != self.user || self.approver.user != self.user {
            return Err(LinkPackageError::WrongUser);
        }
        if self.relay_addrs.is_empty() {
            return Err(LinkPackageError::NoRelayAddress);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    fn code() -> LinkCode {
        LinkCode {
            device: DeviceId::from(&SigningKey::from_bytes(&[2; 32]).verifying_key()),
            secret: LinkSecret::from_bytes([7; 32]),
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let printed = format!("{:?}", code());
        assert!(printed.contains("LinkSecret(..)"), "{printed}");
        assert!(!printed.contains("7, 7"), "{printed}");
    }

    #[test]
    fn refusals_are_typed() {
        let text = code().to_string();
        assert_eq!(text.parse::<LinkCode>(), Ok(code()));
        assert_eq!(
            format!("  {text}\n").parse::<LinkCode>(),
            Ok(code()),
            "surrounding whitespace from a paste is ignored"
        );
        assert_eq!(
            "tidings:abc".parse::<LinkCode>(),
            Err(LinkCodeError::MissingPrefix)
        );
        assert_eq!(
            "tidings-link:0OIl".parse::<LinkCode>(),
            Err(LinkCodeError::NotBase58)
        );
        assert_eq!(
            "tidings-link:abc".parse::<LinkCode>(),
            Err(LinkCodeError::WrongLength(3))
        );
        let long = format!("{LINK_CODE_PREFIX}{}", "1".repeat(10_000));
        assert_eq!(
            long.parse::<LinkCode>(),
            Err(LinkCodeError::TooLong { len: long.len() })
        );
    }
}
