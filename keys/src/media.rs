//! Media encryption: a file sealed under a fresh key with the STREAM construction
//! (`aead-stream`, `StreamBE32` over ChaCha20-Poly1305) in fixed-size chunks, so it is
//! sealed and opened in bounded memory, and a truncated, reordered or spliced ciphertext
//! fails to open instead of yielding part of a file.
//!
//! Chunks are [`MEDIA_CHUNK_BYTES`] of plaintext, each followed by its 16-byte tag; the last
//! chunk (possibly short, possibly empty) carries STREAM's "last" flag. The blob id is the
//! SHA-256 of the whole ciphertext, computed while sealing.

use std::{
    fmt,
    io::{self, Read, Write},
};

use aead_stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::ChaCha20Poly1305;
use tidings_protocol::{BlobHasher, BlobId};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Plaintext bytes per chunk.
pub const MEDIA_CHUNK_BYTES: usize = 64 * 1024;

/// Bytes each chunk's tag adds.
pub const MEDIA_TAG_BYTES: usize = 16;

/// Ciphertext bytes per full chunk.
const CIPHER_CHUNK_BYTES: usize = MEDIA_CHUNK_BYTES + MEDIA_TAG_BYTES;

/// Why a file could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Reading the input or writing the output failed.
    #[error("media I/O: {0}")]
    Io(#[from] io::Error),
    /// A chunk does not open under the key: altered, reordered, from another file, or the
    /// ciphertext was cut short (whatever was written out must be thrown away).
    #[error("chunk {chunk} of the media does not open (altered, reordered or cut short)")]
    Corrupt {
        /// The chunk's position, from 0.
        chunk: u64,
    },
    /// The file has more chunks than the construction can number.
    #[error("the file is too large to seal")]
    TooLarge,
}

/// The key and nonce prefix a file is sealed under (fresh for each file).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MediaKey {
    key: [u8; 32],
    nonce: [u8; 7],
}

impl MediaKey {
    /// A fresh random key and nonce prefix.
    pub fn generate() -> Self {
        Self {
            key: rand::random(),
            nonce: rand::random(),
        }
    }

    /// The key a message carries.
    pub fn from_parts(key: [u8; 32], nonce: [u8; 7]) -> Self {
        Self { key, nonce }
    }

    /// The key bytes, to put in the (end-to-end encrypted) message.
    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The nonce prefix, to put in the message with the key.
    pub fn nonce(&self) -> &[u8; 7] {
        &self.nonce
    }

    fn encryptor(&self) -> EncryptorBE32<ChaCha20Poly1305> {
        EncryptorBE32::new(&self.key.into(), &self.nonce.into())
    }

    fn decryptor(&self) -> DecryptorBE32<ChaCha20Poly1305> {
        DecryptorBE32::new(&self.key.into(), &self.nonce.into())
    }
}

impl fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaKey(..)")
    }
}

/// What sealing a file produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// SHA-256 of the ciphertext.
    pub blob: BlobId,
    /// Ciphertext bytes written.
    pub cipher_size: u64,
    /// Plaintext bytes read.
    pub plain_size: u64,
}

/// The ciphertext size of a plaintext of `plain` bytes.
pub fn cipher_size(plain: u64) -> u64 {
    let chunk = MEDIA_CHUNK_BYTES as u64;
    let chunks = plain.div_ceil(chunk).max(1);
    plain + chunks * MEDIA_TAG_BYTES as u64
}

/// Reads until `buf` is full or the input ends; returns how many bytes it holds.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Seals all of `input` under `key` into `output`.
pub fn seal(
    key: &MediaKey,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<Sealed, MediaError> {
    let mut encryptor = key.encryptor();
    let mut hasher = BlobHasher::default();
    let mut current = vec![0u8; MEDIA_CHUNK_BYTES];
    let mut next = vec![0u8; MEDIA_CHUNK_BYTES];
    let mut current_len = fill(input, &mut current)?;
    let (mut plain_size, mut cipher_size) = (0u64, 0u64);
    let mut chunk = Vec::with_capacity(CIPHER_CHUNK_BYTES);
    loop {
        // Read one chunk ahead: the last chunk is the one no bytes follow.
        let next_len = if current_len == MEDIA_CHUNK_BYTES {
            fill(input, &mut next)?
        } else {
            0
        };
        chunk.clear();
        chunk.extend_from_slice(&current[..current_len]);
        if next_len == 0 {
            encryptor
                .encrypt_last_in_place(b"", &mut chunk)
                .map_err(|_| MediaError::TooLarge)?;
            hasher.update(&chunk);
            output.write_all(&chunk)?;
            output.flush()?;
            return Ok(Sealed {
                blob: hasher.finish(),
                cipher_size: cipher_size + chunk.len() as u64,
                plain_size: plain_size + current_len as u64,
            });
        }
        encryptor
            .encrypt_next_in_place(b"", &mut chunk)
            .map_err(|_| MediaError::TooLarge)?;
        hasher.update(&chunk);
        output.write_all(&chunk)?;
        plain_size += current_len as u64;
        cipher_size += chunk.len() as u64;
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
    }
}

/// Opens a ciphertext sealed under `key` from `input` into `output`; returns the plaintext
/// size. On an error, `output` may hold the chunks that opened before it: write to a
/// temporary file and keep it only on success.
pub fn open(
    key: &MediaKey,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<u64, MediaError> {
    let mut decryptor = key.decryptor();
    let mut current = vec![0u8; CIPHER_CHUNK_BYTES];
    let mut next = vec![0u8; CIPHER_CHUNK_BYTES];
    let mut current_len = fill(input, &mut current)?;
    let mut plain_size = 0u64;
    let mut position = 0u64;
    let mut chunk = Vec::with_capacity(CIPHER_CHUNK_BYTES);
    loop {
        let next_len = if current_len == CIPHER_CHUNK_BYTES {
            fill(input, &mut next)?
        } else {
            0
        };
        chunk.clear();
        chunk.extend_from_slice(&current[..current_len]);
        if next_len == 0 {
            decryptor
                .decrypt_last_in_place(b"", &mut chunk)
                .map_err(|_| MediaError::Corrupt { chunk: position })?;
            output.write_all(&chunk)?;
            output.flush()?;
            return Ok(plain_size + chunk.len() as u64);
        }
        decryptor
            .decrypt_next_in_place(b"", &mut chunk)
            .map_err(|_| MediaError::Corrupt { chunk: position })?;
        output.write_all(&chunk)?;
        plain_size += chunk.len() as u64;
        position += 1;
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
    }
}
