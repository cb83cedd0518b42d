//! Media sealing: files of every size round-trip in bounded chunks, the blob id is the
//! ciphertext's hash, and any cut, swap, flip or wrong key fails to open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use proptest::prelude::*;
use tidings_keys::media::{
    MEDIA_CHUNK_BYTES, MEDIA_TAG_BYTES, MediaError, MediaKey, cipher_size, open, seal,
};
use tidings_protocol::BlobId;

const CHUNK: usize = MEDIA_CHUNK_BYTES;
const CIPHER_CHUNK: usize = MEDIA_CHUNK_BYTES + MEDIA_TAG_BYTES;

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn sealed(key: &MediaKey, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let done = seal(key, &mut &plain[..], &mut out).unwrap();
    assert_eq!(done.plain_size, plain.len() as u64);
    assert_eq!(done.cipher_size, out.len() as u64);
    assert_eq!(done.blob, BlobId::of(&out));
    out
}

fn opened(key: &MediaKey, cipher: &[u8]) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let size = open(key, &mut &cipher[..], &mut out)?;
    assert_eq!(size, out.len() as u64);
    Ok(out)
}

#[test]
fn files_at_and_around_chunk_boundaries_round_trip() {
    let key = MediaKey::generate();
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7] {
        let plain = plaintext(len);
        let cipher = sealed(&key, &plain);
        assert_eq!(cipher.len() as u64, cipher_size(len as u64), "{len}");
        assert_eq!(opened(&key, &cipher).unwrap(), plain, "{len}");
    }
}

#[test]
fn a_cut_swapped_flipped_or_foreign_ciphertext_does_not_open() {
    let key = MediaKey::generate();
    let plain = plaintext(3 * CHUNK + 100);
    let cipher = sealed(&key, &plain);

    // Cut at a chunk boundary: the new last chunk was not sealed as last.
    let cut = &cipher[..2 * CIPHER_CHUNK];
    assert!(matches!(
        opened(&key, cut),
        Err(MediaError::Corrupt { chunk: 1 })
    ));
    // Cut inside a chunk.
    assert!(matches!(
        opened(&key, &cipher[..cipher.len() - 1]),
        Err(MediaError::Corrupt { chunk: 3 })
    ));
    // Two chunks swapped.
    let mut swapped = cipher.clone();
    let (first, rest) = swapped.split_at_mut(CIPHER_CHUNK);
    first.swap_with_slice(&mut rest[..CIPHER_CHUNK]);
    assert!(matches!(
        opened(&key, &swapped),
        Err(MediaError::Corrupt { chunk: 0 })
    ));
    // One bit flipped in the last chunk.
    let mut flipped = cipher.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 1;
    assert!(matches!(
        opened(&key, &flipped),
        Err(MediaError::Corrupt { chunk: 3 })
    ));
    // Another key, or the same key with another nonce prefix.
    assert!(opened(&MediaKey::generate(), &cipher).is_err());
    let other_nonce = MediaKey::from_parts(*key.key_bytes(), [9; 7]);
    assert!(opened(&other_nonce, &cipher).is_err());
    // A chunk of another file (another key) spliced in.
    let other = sealed(&MediaKey::generate(), &plaintext(2 * CHUNK + 1));
    let mut spliced = cipher.clone();
    spliced[CIPHER_CHUNK..2 * CIPHER_CHUNK].copy_from_slice(&other[CIPHER_CHUNK..2 * CIPHER_CHUNK]);
    assert!(matches!(
        opened(&key, &spliced),
        Err(MediaError::Corrupt { chunk: 1 })
    ));
    // The empty ciphertext opens to nothing only if sealed as such: zero bytes do not.
    assert!(opened(&key, &[]).is_err());
}

#[test]
fn the_same_file_under_two_keys_gives_two_blobs() {
    let plain = plaintext(1000);
    let one = sealed(&MediaKey::generate(), &plain);
    let two = sealed(&MediaKey::generate(), &plain);
    assert_ne!(BlobId::of(&one), BlobId::of(&two));
    assert!(!one.windows(16).any(|w| plain.windows(16).any(|p| p == w)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_file_round_trips_and_its_size_is_predicted(len in 0usize..(3 * CHUNK), seed: u8) {
        let plain: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
        let key = MediaKey::generate();
        let cipher = sealed(&key, &plain);
        prop_assert_eq!(cipher.len() as u64, cipher_size(len as u64));
        prop_assert_eq!(opened(&key, &cipher).unwrap(), plain);
    }

    #[test]
    fn any_truncation_fails(len in 1usize..(2 * CHUNK + 50), cut_at in any::<prop::sample::Index>()) {
        let key = MediaKey::generate();
        let cipher = sealed(&key, &plaintext(len));
        let cut = cut_at.index(cipher.len());
        prop_assert!(opened(&key, &cipher[..cut]).is_err());
    }
}
