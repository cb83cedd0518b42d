//! Key files: round trips with and without a passphrase, file modes, wrong passphrases and damaged files.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::{
    fs,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use tidings_keys::{Identity, KeyFileError, KeyFileInfo, keyfile};
use tidings_protocol::DecodeError;

fn key_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("device.key")
}

fn assert_same(loaded: &Identity, original: &Identity) {
    assert_eq!(loaded.user_id(), original.user_id());
    assert_eq!(loaded.device_id(), original.device_id());
    assert_eq!(loaded.cert(), original.cert());
    assert_eq!(
        loaded.account_key().to_bytes(),
        original.account_key().to_bytes()
    );
    assert_eq!(
        loaded.device_key().to_bytes(),
        original.device_key().to_bytes()
    );
    assert_eq!(
        loaded.store_key().as_bytes(),
        original.store_key().as_bytes()
    );
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Writes raw bytes as a key file with a private mode.
fn write_private(path: &Path, bytes: &[u8]) {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
}

#[test]
fn round_trip_without_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);
    let identity = Identity::generate();
    identity.save(&path, None).unwrap();

    assert_same(&Identity::load(&path, None).unwrap(), &identity);
    assert_eq!(
        keyfile::inspect(&path).unwrap(),
        KeyFileInfo {
            user: identity.user_id(),
            device: identity.device_id(),
            encrypted: false,
        }
    );
    assert!(matches!(
        Identity::load(&path, Some("anything")),
        Err(KeyFileError::NotEncrypted)
    ));
}

#[test]
fn round_trip_with_passphrase_and_wrong_or_missing_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);
    let identity = Identity::generate();
    identity.save(&path, Some("correct horse")).unwrap();

    let bytes = fs::read(&path).unwrap();
    let secret = identity.device_key().to_bytes();
    assert!(!bytes.windows(32).any(|window| window == secret));
    assert!(keyfile::inspect(&path).unwrap().encrypted);

    assert_same(
        &Identity::load(&path, Some("correct horse")).unwrap(),
        &identity,
    );
    assert!(matches!(
        Identity::load(&path, None),
        Err(KeyFileError::PassphraseRequired)
    ));
    assert!(matches!(
        Identity::load(&path, Some("correct horse ")),
        Err(KeyFileError::WrongPassphrase)
    ));
}

#[test]
fn an_empty_passphrase_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);
    assert!(matches!(
        Identity::generate().save(&path, Some("")),
        Err(KeyFileError::EmptyPassphrase)
    ));
    assert!(!path.exists());
}

#[test]
fn files_are_0600_even_when_replacing_a_readable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();

    let identity = Identity::generate();
    identity.save(&path, None).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    identity.save(&path, None).unwrap();
    assert_eq!(mode_of(&path), 0o600);

    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("device.key")]);
}

#[test]
fn group_or_world_readable_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);
    Identity::generate().save(&path, None).unwrap();
    for mode in [0o640, 0o604, 0o660, 0o644, 0o610] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        match Identity::load(&path, None) {
            Err(KeyFileError::InsecurePermissions { mode: found }) => assert_eq!(found, mode),
            other => panic!("mode {mode:o} gave {other:?}"),
        }
        assert!(matches!(
            keyfile::inspect(&path),
            Err(KeyFileError::InsecurePermissions { .. })
        ));
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Identity::load(&path, None).is_ok());
}

#[test]
fn every_truncation_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.key");
    let sealed = dir.path().join("sealed.key");
    let identity = Identity::generate();
    identity.save(&plain, None).unwrap();
    identity.save(&sealed, Some("pass")).unwrap();
    let cut = dir.path().join("cut.key");
    for (source, passphrase) in [(&plain, None), (&sealed, Some("pass"))] {
        let bytes = fs::read(source).unwrap();
        for len in 0..bytes.len() {
            write_private(&cut, &bytes[..len]);
            assert!(
                matches!(
                    Identity::load(&cut, passphrase),
                    Err(KeyFileError::Corrupt(_))
                ),
                "truncated to {len} of {}",
                bytes.len()
            );
        }
    }
}

#[test]
fn altered_ciphertext_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);
    Identity::generate().save(&path, Some("pass")).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    // The sealed secrets are the last field of the file.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    write_private(&path, &bytes);
    assert!(matches!(
        Identity::load(&path, Some("pass")),
        Err(KeyFileError::WrongPassphrase)
    ));
}

#[test]
fn flipped_bytes_in_a_plain_file_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);
    let identity = Identity::generate();
    identity.save(&path, None).unwrap();
    let original = fs::read(&path).unwrap();
    let mutated = dir.path().join("mutated.key");
    for index in 0..original.len() {
        let mut bytes = original.clone();
        bytes[index] ^= 0x80;
        write_private(&mutated, &bytes);
        // Either a typed error, or (for a flipped store-key bit, which nothing authenticates
        // in a plain file) an identity with the same public ids.
        if let Ok(loaded) = Identity::load(&mutated, None) {
            assert_eq!(loaded.address(), identity.address());
        }
    }
}

#[test]
fn garbage_oversized_and_foreign_versions_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_path(&dir);

    write_private(&path, b"not a key file at all");
    assert!(matches!(
        Identity::load(&path, None),
        Err(KeyFileError::Corrupt(_))
    ));

    write_private(&path, &vec![0xa1; keyfile::MAX_KEY_FILE_BYTES + 1]);
    assert!(matches!(
        Identity::load(&path, None),
        Err(KeyFileError::Corrupt(DecodeError::TooLarge { .. }))
    ));

    let mut future = Vec::new();
    ciborium::ser::into_writer(
        &ciborium::Value::Map(vec![("v".into(), 3.into()), ("x".into(), 1.into())]),
        &mut future,
    )
    .unwrap();
    write_private(&path, &future);
    assert!(matches!(
        Identity::load(&path, None),
        Err(KeyFileError::UnsupportedVersion(3))
    ));

    assert!(matches!(
        Identity::load(&dir.path().join("missing.key"), None),
        Err(KeyFileError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound
    ));
}

/// Copies a committed fixture into `dir` with an owner-only mode (git does not keep modes).
fn fixture(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let path = dir.path().join(name);
    write_private(&path, &fs::read(source).unwrap());
    path
}

/// The fixtures were written by the first release from fixed keys: account `[0x11; 32]`,
/// device `[0x22; 32]`, store key `[0x33; 32]`, certificate issued at 7 ms.
#[test]
fn key_files_of_the_first_release_still_load_and_are_rewritten_as_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let account = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    let device = ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]);
    for (name, passphrase) in [
        ("key_file_v1_plain.key", None),
        ("key_file_v1_sealed.key", Some("first release")),
    ] {
        let path = fixture(&dir, name);
        let first = fs::read(&path).unwrap();
        let identity = Identity::load(&path, passphrase).unwrap();
        assert!(identity.holds_account_key(), "{name}");
        assert_eq!(identity.account_key().to_bytes(), account.to_bytes());
        assert_eq!(identity.device_key().to_bytes(), device.to_bytes());
        assert_eq!(identity.store_key().as_bytes(), &[0x33; 32]);
        assert_eq!(identity.cert().issued_at_ms, 7);
        assert_eq!(keyfile::inspect(&path).unwrap().user, identity.user_id());

        identity.save(&path, passphrase).unwrap();
        assert_ne!(fs::read(&path).unwrap(), first, "{name} is rewritten");
        assert_same(&Identity::load(&path, passphrase).unwrap(), &identity);
        assert!(matches!(
            Identity::load(&path, Some("wrong")),
            Err(KeyFileError::WrongPassphrase | KeyFileError::NotEncrypted)
        ));
    }
}

#[test]
fn a_first_release_file_with_the_version_changed_does_not_open() {
    // The version is authenticated: a sealed v1 file relabelled as v2 fails to open.
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(&dir, "key_file_v1_sealed.key");
    let mut bytes = fs::read(&path).unwrap();
    // {"v": 1, ...}: map header, text "v", then the unsigned 1.
    assert_eq!(&bytes[1..4], &[0x61, b'v', 0x01]);
    bytes[3] = 0x02;
    write_private(&path, &bytes);
    assert!(matches!(
        Identity::load(&path, Some("first release")),
        Err(KeyFileError::WrongPassphrase)
    ));
}
