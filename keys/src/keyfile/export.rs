//! The account export: the account key alone, always sealed under a passphrase, in an owner-only file.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tidings_protocol::{UserId, codec};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{
    KeyFileError, MAX_KEY_FILE_BYTES, private_file,
    seal::{self, KdfParams, Sealed},
};

/// The format version of account exports this crate writes and reads.
///
/// An export is one CBOR map: `v` this version, `u` the user id, and `p` the account key sealed
/// like a key file's secrets (Argon2id + XChaCha20-Poly1305), with the version, the user id and
/// the KDF costs authenticated as associated data under their own magic.
pub const ACCOUNT_EXPORT_VERSION: u16 = 1;

/// Starts the associated data of an export, so a key file's sealed part never opens as one.
const EXPORT_AAD_MAGIC: &[u8; 4] = b"TDAX";

#[derive(Deserialize)]
struct ExportVersion {
    #[serde(rename = "v")]
    version: u16,
}

#[derive(Serialize, Deserialize)]
struct ExportFile {
    #[serde(rename = "v")]
    version: u16,
    #[serde(rename = "u")]
    user: UserId,
    #[serde(rename = "p")]
    sealed: Sealed,
}

/// The sealed plaintext: the raw account key.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct AccountSecret {
    #[serde(rename = "a", with = "serde_bytes")]
    pub(crate) account: [u8; 32],
}

fn associated_data(version: u16, user: UserId, kdf: &KdfParams) -> Vec<u8> {
    let mut aad = EXPORT_AAD_MAGIC.to_vec();
    codec::encode_into(&(version, user, kdf), &mut aad);
    aad
}

/// Writes the account key of `user` to `path`, sealed under `passphrase` (never plain).
pub(crate) fn save(
    secret: &AccountSecret,
    user: UserId,
    path: &Path,
    passphrase: &str,
) -> Result<(), KeyFileError> {
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase);
    }
    let mut plaintext = Zeroizing::new(Vec::with_capacity(64));
    codec::encode_into(secret, &mut plaintext);
    let aad = |kdf: &KdfParams| associated_data(ACCOUNT_EXPORT_VERSION, user, kdf);
    let file = ExportFile {
        version: ACCOUNT_EXPORT_VERSION,
        user,
        sealed: seal::seal(&plaintext, passphrase, aad)?,
    };
    private_file::write_atomically(path, &codec::encode(&file))?;
    Ok(())
}

/// Reads the account key from the export at `path`, with the user id the file states (the
/// caller checks that the key is that user's).
pub(crate) fn load(path: &Path, passphrase: &str) -> Result<(UserId, AccountSecret), KeyFileError> {
    let bytes = private_file::read(path)?;
    let ExportVersion { version } = codec::decode(&bytes, MAX_KEY_FILE_BYTES)?;
    if version != ACCOUNT_EXPORT_VERSION {
        return Err(KeyFileError::UnsupportedVersion(version));
    }
    let file: ExportFile = codec::decode(&bytes, MAX_KEY_FILE_BYTES)?;
    let aad = |kdf: &KdfParams| associated_data(file.version, file.user, kdf);
    let plaintext = seal::open(&file.sealed, passphrase, aad)?;
    Ok((file.user, codec::decode(&plaintext, MAX_KEY_FILE_BYTES)?))
}
