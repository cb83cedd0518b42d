//! Media blobs on `/tidings/blob/1`: uploads and downloads, resuming both, what is refused
//! before a byte is stored, what never becomes visible, and how long blobs live.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)] // the blob tests use a few of the device helpers
#[path = "../devices/support.rs"]
mod support;

mod federation;
mod hostile;
mod lifetime;
mod recovery;
mod refusals;
mod revoked;
mod stand_ins;
mod transfers;

use std::path::Path;

/// `len` bytes that differ with `seed` (not compressible, not all zero).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The names of the whole blob files of the relay in `data_dir`.
pub fn blob_files(data_dir: &Path) -> Vec<String> {
    names(&data_dir.join("blobs"))
}

/// The names of the partial upload files of the relay in `data_dir`.
pub fn partial_files(data_dir: &Path) -> Vec<String> {
    names(&data_dir.join("blobs").join("partial"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| entry.file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
