//! Passphrase protection: Argon2id derives a key that seals the secrets with XChaCha20-Poly1305.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tidings_protocol::{DecodeError, DeviceId, UserId, codec};
use zeroize::Zeroizing;

use super::{KEY_FILE_VERSION, KeyFileError, MAX_KEY_FILE_BYTES, Secrets};

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
/// Starts the associated data, separating it from any other use of the derived key.
const AAD_MAGIC: &[u8; 4] = b"TDKF";

/// The secrets, sealed under a key derived from a passphrase.
#[derive(Serialize, Deserialize)]
pub(super) struct Sealed {
    #[serde(rename = "k")]
    pub(super) kdf: KdfParams,
    #[serde(rename = "n", with = "serde_bytes")]
    nonce: [u8; NONCE_LEN],
    #[serde(rename = "c", with = "serde_bytes")]
    ciphertext: Vec<u8>,
}

/// Argon2id costs and salt, stored in the file.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(super) struct KdfParams {
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

/// The version, ids and KDF parameters, authenticated along with the secrets.
fn associated_data(user: UserId, device: DeviceId, kdf: &KdfParams) -> Vec<u8> {
    let mut aad = AAD_MAGIC.to_vec();
    codec::encode_into(&(KEY_FILE_VERSION, user, device, kdf), &mut aad);
    aad
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

/// Seals `secrets` under `passphrase` with fresh salt and nonce.
pub(super) fn seal(
    secrets: &Secrets,
    user: UserId,
    device: DeviceId,
    passphrase: &str,
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
    let mut plaintext = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_BYTES));
    codec::encode_into(secrets, &mut plaintext);
    let aad = associated_data(user, device, &kdf);
    let payload = Payload {
        msg: &plaintext,
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

/// Opens sealed secrets; a wrong passphrase and altered bytes both fail authentication.
pub(super) fn open(
    sealed: &Sealed,
    user: UserId,
    device: DeviceId,
    passphrase: &str,
) -> Result<Secrets, KeyFileError> {
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
    let aad = associated_data(user, device, kdf);
    let payload = Payload {
        msg: &sealed.ciphertext,
        aad: &aad,
    };
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(&XNonce::from(sealed.nonce), payload)
            .map_err(|_| KeyFileError::WrongPassphrase)?,
    );
    Ok(codec::decode(&plaintext, MAX_KEY_FILE_BYTES)?)
}

fn bad_kdf(reason: &'static str) -> KeyFileError {
    KeyFileError::Corrupt(DecodeError::Invalid {
        field: "kdf",
        reason,
    })
}
