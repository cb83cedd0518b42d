//! Passphrase protection: Argon2id derives a key that seals secret bytes with XChaCha20-Poly1305 (key files and account exports).

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tidings_protocol::DecodeError;
use zeroize::Zeroizing;

use super::KeyFileError;

/// Argon2id memory cost for new files, in KiB (64 MiB, RFC 9106's second recommendation).
const KDF_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes for new files.
const KDF_ITERATIONS: u32 = 3;
/// Argon2id lanes for new files (this build hashes lanes sequentially).
const KDF_LANES: u32 = 1;
/// Largest Argon2id memory cost accepted when reading, so a doctored file cannot demand
/// unbounded memory or time.
const MAX_KDF_MEMORY_KIB: u32 = 1024 * 1024;
/// Largest Argon2id pass count accepted when reading.
const MAX_KDF_ITERATIONS: u32 = 64;
/// Largest Argon2id lane count accepted when reading.
const MAX_KDF_LANES: u32 = 16;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;

/// Secret bytes, sealed under a key derived from a passphrase.
#[derive(Serialize, Deserialize)]
pub(crate) struct Sealed {
    #[serde(rename = "k")]
    pub(super) kdf: KdfParams,
    #[serde(rename = "n", with = "serde_bytes")]
    nonce: [u8; NONCE_LEN],
    #[serde(rename = "c", with = "serde_bytes")]
    ciphertext: Vec<u8>,
}

/// Argon2id costs and salt, stored in the file.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(crate) struct KdfParams {
    #[serde(rename = "m")]
    pub(super) memory_kib: u32,
    #[serde(rename = "t")]
    pub(super) iterations: u32,
    #[serde(rename = "p")]
    pub(super) lanes: u32,
    #[serde(rename = "s", with = "serde_bytes")]
    salt: [u8; SALT_LEN],
}

impl KdfParams {
    fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.memory_kib, self.iterations, self.lanes, Some(32))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

fn derive_key(
    argon2: &Argon2<'_>,
    passphrase: &str,
    salt: &[u8],
) -> Result<XChaCha20Poly1305, KeyFileError> {
    let mut key = Zeroizing::new([0u8; 32]);
    argon2
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut_slice())
        .map_err(|error| KeyFileError::Kdf(error.to_string()))?;
    Ok(XChaCha20Poly1305::new((&*key).into()))
}

/// Seals `plaintext` under `passphrase` with fresh salt and nonce. `aad` builds the associated
/// data from the KDF parameters (each kind of file binds its own header and magic).
pub(crate) fn seal(
    plaintext: &[u8],
    passphrase: &str,
    aad: impl FnOnce(&KdfParams) -> Vec<u8>,
) -> Result<Sealed, KeyFileError> {
    let mut rng = rand::rng();
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let kdf = KdfParams {
        memory_kib: KDF_MEMORY_KIB,
        iterations: KDF_ITERATIONS,
        lanes: KDF_LANES,
        salt,
    };
    let argon2 = kdf
        .argon2()
        .map_err(|error| KeyFileError::Kdf(error.to_string()))?;
    let cipher = derive_key(&argon2, passphrase, &kdf.salt)?;
    let aad = aad(&kdf);
    let payload = Payload {
        msg: plaintext,
        aad: &aad,
    };
    let ciphertext = cipher
        .encrypt(&XNonce::from(nonce), payload)
        .map_err(|_| KeyFileError::Encryption)?;
    Ok(Sealed {
        kdf,
        nonce,
        ciphertext,
    })
}

/// Opens sealed bytes; a wrong passphrase, altered bytes and another header (`aad`) all fail
/// authentication.
pub(crate) fn open(
    sealed: &Sealed,
    passphrase: &str,
    aad: impl FnOnce(&KdfParams) -> Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let kdf = &sealed.kdf;
    if kdf.memory_kib > MAX_KDF_MEMORY_KIB
        || kdf.iterations > MAX_KDF_ITERATIONS
        || kdf.lanes > MAX_KDF_LANES
    {
        return Err(bad_kdf("Argon2id costs above the accepted maximum"));
    }
    let argon2 = kdf
        .argon2()
        .map_err(|_| bad_kdf("Argon2id parameters out of range"))?;
    let cipher = derive_key(&argon2, passphrase, &kdf.salt)?;
    let aad = aad(kdf);
    let payload = Payload {
        msg: &sealed.ciphertext,
        aad: &aad,
    };
    Ok(Zeroizing::new(
        cipher
            .decrypt(&XNonce::from(sealed.nonce), payload)
            .map_err(|_| KeyFileError::WrongPassphrase)?,
    ))
}

fn bad_kdf(reason: &'static str) -> KeyFileError {
    KeyFileError::Corrupt(DecodeError::Invalid {
        field: "kdf",
        reason,
    })
}
