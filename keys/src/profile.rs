//! The profile key and the profile sealed under it.
//!
//! A profile is sealed with XChaCha20-Poly1305 (ChaCha20-Poly1305 with a 24-byte random
//! nonce) under the user's 32-byte profile key: `nonce (24 B) || ciphertext`. The associated
//! data binds the user id and the version, so a relay cannot hand out one user's profile as
//! another's, nor an older profile under a newer version.

use std::fmt;

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::Rng;
use tidings_protocol::{
    DecodeError, UserId,
    profile::{MAX_SEALED_PROFILE_BYTES, PROFILE_KEY_BYTES, Profile, SealedProfile},
};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;
/// Starts the associated data, separating this use of the key from any other.
const PROFILE_AAD_MAGIC: &[u8; 4] = b"TDPF";

/// Why a profile could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A key received is not [`PROFILE_KEY_BYTES`] long.
    #[error("a profile key must be {PROFILE_KEY_BYTES} bytes")]
    KeyLength,
    /// The sealed profile is shorter than a nonce and tag, or longer than the bound.
    #[error("the sealed profile has a bad length ({0} bytes)")]
    BadLength(usize),
    /// It does not open with this key for this user and version (another key, or altered).
    #[error("the profile does not open with the key held (rotated, or altered)")]
    WrongKey,
    /// The profile encodes to more than a sealed profile may hold.
    #[error("the profile is too large to seal ({0} bytes)")]
    TooLarge(usize),
    /// Encrypting failed.
    #[error("sealing the profile failed")]
    Encryption,
    /// It opened, but the plaintext is not a profile of this version within its bounds.
    #[error("the opened profile is malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// It opened, but says another version than the record carrying it.
    #[error("the opened profile says version {inner}, the record {outer}")]
    VersionMismatch {
        /// The version inside.
        inner: u64,
        /// The version of the record.
        outer: u64,
    },
}

/// A user's profile key: random, shared with contacts over Olm, replaced when a contact is
/// removed. Wiped on drop; `Debug` prints no key material.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ProfileKey([u8; PROFILE_KEY_BYTES]);

impl ProfileKey {
    /// A fresh random key.
    pub fn generate() -> ProfileKey {
        let mut key = ProfileKey([0; PROFILE_KEY_BYTES]);
        rand::rng().fill_bytes(&mut key.0);
        key
    }

    /// A key received from a contact or read from the store.
    pub fn from_slice(bytes: &[u8]) -> Result<ProfileKey, ProfileError> {
        let bytes: [u8; PROFILE_KEY_BYTES] =
            bytes.try_into().map_err(|_| ProfileError::KeyLength)?;
        Ok(ProfileKey(bytes))
    }

    /// The key's bytes, to send over Olm or keep in the (encrypted) client store.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

impl fmt::Debug for ProfileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProfileKey(..)")
    }
}

fn associated_data(user: &UserId, version: u64) -> Vec<u8> {
    let mut aad = PROFILE_AAD_MAGIC.to_vec();
    aad.extend_from_slice(user.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Seals `profile` of `user` under `key`, with the picture's blob in clear beside it.
pub fn seal_profile(
    key: &ProfileKey,
    user: UserId,
    profile: &Profile,
) -> Result<SealedProfile, ProfileError> {
    let plaintext = Zeroizing::new(profile.encode());
    if plaintext.len() + NONCE_LEN + TAG_LEN > MAX_SEALED_PROFILE_BYTES {
        return Err(ProfileError::TooLarge(plaintext.len()));
    }
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = associated_data(&user, profile.version);
    let ciphertext = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| ProfileError::Encryption)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    Ok(SealedProfile {
        user,
        version: profile.version,
        picture: profile.picture.as_ref().map(|picture| picture.blob.clone()),
        ciphertext: sealed,
    })
}

/// Opens a sealed profile with `key`, checking it is the record's user and version.
pub fn open_profile(key: &ProfileKey, sealed: &SealedProfile) -> Result<Profile, ProfileError> {
    let bytes = &sealed.ciphertext;
    if bytes.len() < NONCE_LEN + TAG_LEN || bytes.len() > MAX_SEALED_PROFILE_BYTES {
        return Err(ProfileError::BadLength(bytes.len()));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let mut nonce_bytes = [0u8; NONCE_LEN];
    nonce_bytes.copy_from_slice(nonce);
    let aad = associated_data(&sealed.user, sealed.version);
    let plaintext = Zeroizing::new(
        key.cipher()
            .decrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| ProfileError::WrongKey)?,
    );
    let profile = Profile::decode(&plaintext)?;
    if profile.version != sealed.version {
        return Err(ProfileError::VersionMismatch {
            inner: profile.version,
            outer: sealed.version,
        });
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(version: u64) -> Profile {
        Profile {
            version,
            name: "Alice A.".into(),
            about: "here".into(),
            picture: None,
        }
    }

    #[test]
    fn seals_and_opens_for_the_same_user_and_version_only() {
        let key = ProfileKey::generate();
        let alice = UserId::from_bytes([1; 32]);
        let sealed = seal_profile(&key, alice, &profile(3)).unwrap();
        assert_eq!(open_profile(&key, &sealed).unwrap(), profile(3));
        assert!(!sealed.ciphertext.windows(8).any(|w| w == b"Alice A."));

        let as_bob = SealedProfile {
            user: UserId::from_bytes([2; 32]),
            ..sealed.clone()
        };
        assert!(matches!(
            open_profile(&key, &as_bob),
            Err(ProfileError::WrongKey)
        ));
        let as_newer = SealedProfile {
            version: 4,
            ..sealed.clone()
        };
        assert!(matches!(
            open_profile(&key, &as_newer),
            Err(ProfileError::WrongKey)
        ));
        assert!(matches!(
            open_profile(&ProfileKey::generate(), &sealed),
            Err(ProfileError::WrongKey)
        ));
        let cut = SealedProfile {
            ciphertext: vec![0; 10],
            ..sealed
        };
        assert!(matches!(
            open_profile(&key, &cut),
            Err(ProfileError::BadLength(10))
        ));
    }

    #[test]
    fn keys_are_redacted_and_checked() {
        let key = ProfileKey::from_slice(&[9; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "ProfileKey(..)");
        assert!(matches!(
            ProfileKey::from_slice(&[9; 31]),
            Err(ProfileError::KeyLength)
        ));
        assert_ne!(ProfileKey::generate(), ProfileKey::generate());
    }
}
