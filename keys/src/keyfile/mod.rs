//! The identity key file: versioned CBOR, replaced atomically, mode `0600`, optionally sealed under a passphrase.

pub(crate) mod export;
pub use export::ACCOUNT_EXPORT_VERSION;
mod private_file;
mod seal;

use std::{io, path::Path};

use serde::{Deserialize, Serialize};
use tidings_protocol::{DecodeError, DeviceCert, DeviceId, UserId, codec};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use self::seal::{KdfParams, Sealed};

/// Starts the associated data of a sealed key file, separating it from any other use of the
/// derived key.
const KEY_FILE_AAD_MAGIC: &[u8; 4] = b"TDKF";

/// The version, ids and KDF parameters, authenticated along with the secrets (the version the
/// file states, so first-release files still open).
fn associated_data(version: u16, user: UserId, device: DeviceId, kdf: &KdfParams) -> Vec<u8> {
    let mut aad = KEY_FILE_AAD_MAGIC.to_vec();
    codec::encode_into(&(version, user, device, kdf), &mut aad);
    aad
}

/// The format version this crate writes; it also reads [`KEY_FILE_VERSION_1`].
///
/// A key file is one CBOR map: `v` this version, `u` the user id, `d` the device id, and `p`
/// the protection, either `plain` (the secrets themselves; the file's `0600` mode is their only
/// protection) or `argon2id+xchacha20poly1305` (Argon2id costs and salt, a random nonce, and
/// the sealed secrets, with the version, ids and costs authenticated as associated data).
/// The secrets are the account key (absent on a linked device), the device key, the store key
/// and the device certificate.
pub const KEY_FILE_VERSION: u16 = 2;

/// The format of the first release: the same map, but the account key is always present.
pub const KEY_FILE_VERSION_1: u16 = 1;

/// Largest key file accepted; a real one is a few hundred bytes.
pub const MAX_KEY_FILE_BYTES: usize = 4096;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, writing, syncing or renaming the file failed.
    #[error("key file I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The file may be read by group or others; it is refused until its mode is `0600`.
    #[error("key file mode {mode:o} lets group or others access it; expected 600")]
    InsecurePermissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// The file is truncated, too large or not a key file.
    #[error("key file is corrupt: {0}")]
    Corrupt(#[from] DecodeError),
    /// The file was written by a format version this build does not know.
    #[error("key file format version {0} is not supported")]
    UnsupportedVersion(u16),
    /// The file is encrypted and no passphrase was given.
    #[error("key file is encrypted; a passphrase is required")]
    PassphraseRequired,
    /// The passphrase does not open the file (or the encrypted part was altered).
    #[error("wrong passphrase, or the key file was altered")]
    WrongPassphrase,
    /// A passphrase was given but the file is not encrypted.
    #[error("a passphrase was given but the key file is not encrypted")]
    NotEncrypted,
    /// An empty passphrase was given to encrypt a file; pass `None` to write it unencrypted.
    #[error("refusing to encrypt with an empty passphrase")]
    EmptyPassphrase,
    /// The file decodes but its parts do not belong together.
    #[error("key file is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// Argon2id could not derive the key (bad parameters or out of memory).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// Encrypting the secrets failed.
    #[error("encrypting the key file failed")]
    Encryption,
}

/// The public facts a key file states without opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFileInfo {
    /// The account the file belongs to.
    pub user: UserId,
    /// The device it holds the key of.
    pub device: DeviceId,
    /// Whether a passphrase is needed to load it.
    pub encrypted: bool,
}

#[derive(Deserialize)]
struct FileVersion {
    #[serde(rename = "v")]
    version: u16,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    #[serde(rename = "v")]
    version: u16,
    #[serde(rename = "u")]
    user: UserId,
    #[serde(rename = "d")]
    device: DeviceId,
    #[serde(rename = "p")]
    protection: Protection,
}

#[derive(Serialize, Deserialize)]
enum Protection {
    #[serde(rename = "plain")]
    Plain(Secrets),
    #[serde(rename = "argon2id+xchacha20poly1305")]
    Passphrase(Sealed),
}

/// What a key file keeps secret: the raw bytes of the account key (only on the device that
/// holds it), the device and store keys, and the account's certificate for the device. Wiped on
/// drop; the identity is built from it.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secrets {
    #[serde(
        rename = "a",
        with = "serde_bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) account: Option<[u8; 32]>,
    #[serde(rename = "d", with = "serde_bytes")]
    pub(crate) device: [u8; 32],
    #[serde(rename = "k", with = "serde_bytes")]
    pub(crate) store: [u8; 32],
    #[serde(rename = "c")]
    #[zeroize(skip)]
    pub(crate) cert: DeviceCert,
}

/// Reads the public part of a key file: whose it is and whether it needs a passphrase.
pub fn inspect(path: &Path) -> Result<KeyFileInfo, KeyFileError> {
    let bytes = private_file::read(path)?;
    let file = decode_file(&bytes)?;
    Ok(KeyFileInfo {
        user: file.user,
        device: file.device,
        encrypted: matches!(file.protection, Protection::Passphrase(_)),
    })
}

/// Writes `secrets` to a key file at `path`, sealed under `passphrase` if there is one.
pub(crate) fn save(
    secrets: Secrets,
    path: &Path,
    passphrase: Option<&str>,
) -> Result<(), KeyFileError> {
    let bytes = to_bytes(secrets, passphrase)?;
    private_file::write_atomically(path, &bytes)?;
    Ok(())
}

/// The bytes of a key file holding `secrets`, sealed under `passphrase` if there is one.
pub(crate) fn to_bytes(
    secrets: Secrets,
    passphrase: Option<&str>,
) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let (user, device) = (secrets.cert.user, secrets.cert.device);
    let protection = match passphrase {
        None => Protection::Plain(secrets),
        Some("") => return Err(KeyFileError::EmptyPassphrase),
        Some(passphrase) => {
            let mut plaintext = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_BYTES));
            codec::encode_into(&secrets, &mut plaintext);
            let aad = |kdf: &KdfParams| associated_data(KEY_FILE_VERSION, user, device, kdf);
            Protection::Passphrase(seal::seal(&plaintext, passphrase, aad)?)
        }
    };
    let file = KeyFile {
        version: KEY_FILE_VERSION,
        user,
        device,
        protection,
    };
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_BYTES));
    codec::encode_into(&file, &mut bytes);
    Ok(bytes)
}

/// Reads the secrets of the key file at `path`, opening them with `passphrase` if sealed; the
/// certificate must name the ids the file states.
pub(crate) fn load(path: &Path, passphrase: Option<&str>) -> Result<Secrets, KeyFileError> {
    let bytes = private_file::read(path)?;
    from_bytes(&bytes, passphrase)
}

/// The secrets of the key file `bytes` (at most [`MAX_KEY_FILE_BYTES`]), as [`load`] reads them.
pub(crate) fn from_bytes(bytes: &[u8], passphrase: Option<&str>) -> Result<Secrets, KeyFileError> {
    let file = decode_file(bytes)?;
    let secrets: Secrets = match (file.protection, passphrase) {
        (Protection::Plain(secrets), None) => secrets,
        (Protection::Plain(_), Some(_)) => return Err(KeyFileError::NotEncrypted),
        (Protection::Passphrase(_), None) => return Err(KeyFileError::PassphraseRequired),
        (Protection::Passphrase(sealed), Some(passphrase)) => {
            let aad = |kdf: &KdfParams| associated_data(file.version, file.user, file.device, kdf);
            let plaintext = seal::open(&sealed, passphrase, aad)?;
            codec::decode(&plaintext, MAX_KEY_FILE_BYTES)?
        }
    };
    if file.version == KEY_FILE_VERSION_1 && secrets.account.is_none() {
        return Err(KeyFileError::Inconsistent(
            "a first-release key file without the account key",
        ));
    }
    if secrets.cert.user != file.user || secrets.cert.device != file.device {
        return Err(KeyFileError::Inconsistent(
            "the certificate names other ids than the file",
        ));
    }
    Ok(secrets)
}

fn decode_file(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
    let FileVersion { version } = codec::decode(bytes, MAX_KEY_FILE_BYTES)?;
    if version != KEY_FILE_VERSION && version != KEY_FILE_VERSION_1 {
        return Err(KeyFileError::UnsupportedVersion(version));
    }
    Ok(codec::decode(bytes, MAX_KEY_FILE_BYTES)?)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use ed25519_dalek::SigningKey;

    use super::{seal::Sealed, *};

    /// The secrets of a consistent identity (the certificate names both keys).
    fn secrets() -> Secrets {
        let account = SigningKey::from_bytes(&[0x11; 32]);
        let device = SigningKey::from_bytes(&[0x22; 32]);
        let cert = DeviceCert::issue(&account, DeviceId::from(&device.verifying_key()), 7);
        Secrets {
            account: Some(account.to_bytes()),
            device: device.to_bytes(),
            store: [0x33; 32],
            cert,
        }
    }

    fn rewrite(path: &Path, change: impl FnOnce(&mut KeyFile)) {
        let mut file = decode_file(&fs::read(path).unwrap()).unwrap();
        change(&mut file);
        private_file::write_atomically(path, &codec::encode(&file)).unwrap();
    }

    fn sealed(file: &mut KeyFile) -> &mut Sealed {
        match &mut file.protection {
            Protection::Passphrase(sealed) => sealed,
            Protection::Plain(_) => panic!("expected an encrypted file"),
        }
    }

    #[test]
    fn secrets_round_trip_plain_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        for passphrase in [None, Some("pass")] {
            save(secrets(), &path, passphrase).unwrap();
            let loaded = load(&path, passphrase).unwrap();
            let original = secrets();
            assert_eq!(loaded.account, original.account);
            assert_eq!(loaded.device, original.device);
            assert_eq!(loaded.store, original.store);
            assert_eq!(loaded.cert, original.cert);
        }
    }

    #[test]
    fn the_header_is_bound_to_the_sealed_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        save(secrets(), &path, Some("pass")).unwrap();
        let other = SigningKey::from_bytes(&[0x44; 32]);
        rewrite(&path, |file| {
            file.user = UserId::from(&other.verifying_key())
        });
        assert!(matches!(
            load(&path, Some("pass")),
            Err(KeyFileError::WrongPassphrase)
        ));
    }

    #[test]
    fn excessive_or_invalid_kdf_costs_are_refused_before_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        save(secrets(), &path, Some("pass")).unwrap();
        rewrite(&path, |file| sealed(file).kdf.memory_kib = u32::MAX);
        assert!(matches!(
            load(&path, Some("pass")),
            Err(KeyFileError::Corrupt(DecodeError::Invalid {
                field: "kdf",
                ..
            }))
        ));
        rewrite(&path, |file| {
            let kdf = &mut sealed(file).kdf;
            kdf.memory_kib = 64 * 1024;
            kdf.lanes = 0;
        });
        assert!(matches!(
            load(&path, Some("pass")),
            Err(KeyFileError::Corrupt(DecodeError::Invalid {
                field: "kdf",
                ..
            }))
        ));
    }
}
