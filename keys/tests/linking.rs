//! Linked devices and account exports: sealing and opening link packages, what a linked device may not sign, its key file, and exporting and importing the account key.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use tidings_keys::{
    ExportError, Identity, KeyFileError, LinkError, NoAccountKey, PendingLink,
    link::{open_package, seal_package},
};
use tidings_protocol::{
    Address, BoundedVec, DeviceEntry, DeviceList, LinkCode, LinkPackage, LinkPackageError,
    LinkSecret, limits::MAX_LINK_PACKAGE_BYTES,
};

/// The package a primary device leaves for the device of `code`.
fn package_for(primary: &Identity, code: &LinkCode) -> LinkPackage {
    LinkPackage {
        cert: primary.certify_device(code.device).unwrap(),
        user: primary.user_id(),
        relay: "12D3KooWrelay".into(),
        relay_addrs: BoundedVec::new(vec!["/ip4/127.0.0.1/tcp/4001".into()]).unwrap(),
        approver: primary.address(),
        name: "laptop".into(),
        list_version: 2,
    }
}

/// A primary device, and a device linked to its account through a sealed package.
fn linked_pair() -> (Identity, Identity, LinkPackage) {
    let primary = Identity::generate();
    let pending = PendingLink::generate();
    let code = pending.code();
    let sealed = seal_package(&code, &package_for(&primary, &code)).unwrap();
    let (linked, package) = pending.open(&sealed).unwrap();
    (primary, linked, package)
}

#[test]
fn a_sealed_package_links_the_device_that_showed_the_code() {
    let primary = Identity::generate();
    let pending = PendingLink::generate();
    let code: LinkCode = pending.code().to_string().parse().unwrap();
    assert_eq!(code.device, pending.device_id());
    let sealed = seal_package(&code, &package_for(&primary, &code)).unwrap();
    assert!(sealed.len() <= MAX_LINK_PACKAGE_BYTES);
    let (linked, package) = pending.open(&sealed).unwrap();

    assert_eq!(package.approver, primary.address());
    assert_eq!(linked.user_id(), primary.user_id());
    assert_eq!(linked.device_id(), pending.device_id());
    assert_eq!(linked.cert().verify(), Ok(()));
    assert!(!linked.holds_account_key());
    let keypair = linked.libp2p_keypair().unwrap();
    assert_eq!(
        keypair.public(),
        pending.libp2p_keypair().unwrap().public(),
        "the key that waited at the relay is the device's identity"
    );
}

#[test]
fn a_wrong_code_an_altered_package_or_another_device_do_not_open() {
    let primary = Identity::generate();
    let pending = PendingLink::generate();
    let code = pending.code();
    let sealed = seal_package(&code, &package_for(&primary, &code)).unwrap();

    let wrong = LinkSecret::from_bytes([9; 32]);
    assert!(matches!(
        open_package(&wrong, code.device, &sealed),
        Err(LinkError::WrongSecret)
    ));
    for index in [0, 30, sealed.len() - 1] {
        let mut altered = sealed.clone();
        altered[index] ^= 0x01;
        assert!(matches!(
            pending.open(&altered),
            Err(LinkError::WrongSecret)
        ));
    }
    let other = PendingLink::generate();
    assert!(matches!(
        open_package(&code.secret, other.device_id(), &sealed),
        Err(LinkError::WrongSecret)
    ));
    for len in [0, 39, MAX_LINK_PACKAGE_BYTES + 1] {
        assert!(matches!(
            pending.open(&vec![0; len]),
            Err(LinkError::BadLength(found)) if found == len
        ));
    }
}

#[test]
fn a_package_certifying_another_device_is_refused_after_opening() {
    let primary = Identity::generate();
    let pending = PendingLink::generate();
    let code = pending.code();
    let mut package = package_for(&primary, &code);
    package.cert = primary
        .certify_device(PendingLink::generate().device_id())
        .unwrap();
    let sealed = seal_package(&code, &package).unwrap();
    assert!(matches!(
        pending.open(&sealed),
        Err(LinkError::Package(LinkPackageError::WrongDevice))
    ));

    let mut package = package_for(&primary, &code);
    package.approver = Address {
        user: Identity::generate().user_id(),
        device: primary.device_id(),
    };
    let sealed = seal_package(&code, &package).unwrap();
    assert!(matches!(
        pending.open(&sealed),
        Err(LinkError::Package(LinkPackageError::WrongUser))
    ));
}

#[test]
fn a_linked_device_cannot_use_the_account_key() {
    let (primary, linked, _) = linked_pair();
    let list = DeviceList::new(
        primary.user_id(),
        2,
        vec![DeviceEntry {
            device: linked.device_id(),
            name: "laptop".into(),
            added_at_ms: 1,
        }],
    )
    .unwrap();
    assert_eq!(
        linked.sign_device_list(list.clone()).unwrap_err(),
        NoAccountKey
    );
    assert_eq!(primary.sign_device_list(list).unwrap().verify(), Ok(()));
    assert_eq!(
        linked.certify_device(primary.device_id()).unwrap_err(),
        NoAccountKey
    );
    assert_eq!(
        linked
            .sign_home_record("relay".into(), BoundedVec::default(), 1, u64::MAX)
            .unwrap_err(),
        NoAccountKey
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        linked.export_account(&dir.path().join("export"), "pass"),
        Err(ExportError::NoAccountKey(NoAccountKey))
    ));
    assert!(!dir.path().join("export").exists());
    assert!(NoAccountKey.to_string().contains("tidings init --import"));
}

#[test]
fn a_linked_key_file_round_trips_plain_and_sealed_without_an_account_key() {
    let (_, linked, _) = linked_pair();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.key");
    for passphrase in [None, Some("pass")] {
        linked.save(&path, passphrase).unwrap();
        let bytes = fs::read(&path).unwrap();
        let device_secret = linked.device_key().to_bytes();
        if passphrase.is_some() {
            assert!(!bytes.windows(32).any(|window| window == device_secret));
        }
        let loaded = Identity::load(&path, passphrase).unwrap();
        assert!(!loaded.holds_account_key());
        assert_eq!(loaded.address(), linked.address());
        assert_eq!(loaded.cert(), linked.cert());
        assert_eq!(loaded.store_key().as_bytes(), linked.store_key().as_bytes());
    }
}

fn export_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("account.export")
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_export_restores_the_account_on_a_new_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = export_path(&dir);
    let primary = Identity::generate();
    primary.export_account(&path, "correct horse").unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let bytes = fs::read(&path).unwrap();
    let account_secret = primary.account_key().to_bytes();
    assert!(!bytes.windows(32).any(|window| window == account_secret));

    let restored = Identity::import_account(&path, "correct horse").unwrap();
    assert_eq!(restored.user_id(), primary.user_id());
    assert_ne!(restored.device_id(), primary.device_id());
    assert!(restored.holds_account_key());
    assert_eq!(restored.cert().verify(), Ok(()));
    assert_eq!(
        restored.account_key().to_bytes(),
        primary.account_key().to_bytes()
    );
    assert_ne!(
        restored.store_key().as_bytes(),
        primary.store_key().as_bytes()
    );
}

#[test]
fn exports_refuse_wrong_or_empty_passphrases_loose_modes_and_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = export_path(&dir);
    let primary = Identity::generate();
    assert!(matches!(
        primary.export_account(&path, ""),
        Err(ExportError::File(KeyFileError::EmptyPassphrase))
    ));
    assert!(!path.exists());

    primary.export_account(&path, "pass").unwrap();
    assert!(matches!(
        Identity::import_account(&path, "pass "),
        Err(KeyFileError::WrongPassphrase)
    ));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        Identity::import_account(&path, "pass"),
        Err(KeyFileError::InsecurePermissions { mode: 0o644 })
    ));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

    // The sealed part is bound to the user id the file states.
    let mut bytes = fs::read(&path).unwrap();
    let other = Identity::generate().user_id();
    let at = bytes
        .windows(32)
        .position(|window| window == primary.user_id().as_bytes())
        .unwrap();
    bytes[at..at + 32].copy_from_slice(other.as_bytes());
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Identity::import_account(&path, "pass"),
        Err(KeyFileError::WrongPassphrase)
    ));

    // A key file is not an export, and every truncation is a typed error.
    let key_file = dir.path().join("device.key");
    primary.save(&key_file, Some("pass")).unwrap();
    assert!(matches!(
        Identity::import_account(&key_file, "pass"),
        Err(KeyFileError::Corrupt(_) | KeyFileError::UnsupportedVersion(_))
    ));
    primary.export_account(&path, "pass").unwrap();
    let whole = fs::read(&path).unwrap();
    for len in 0..whole.len() {
        fs::write(&path, &whole[..len]).unwrap();
        assert!(
            matches!(
                Identity::import_account(&path, "pass"),
                Err(KeyFileError::Corrupt(_))
            ),
            "truncated to {len}"
        );
    }
}

#[test]
fn a_pending_link_prints_no_secret() {
    let pending = PendingLink::generate();
    let printed = format!("{pending:?}");
    assert_eq!(
        printed,
        format!("PendingLink {{ device: {:?}, .. }}", pending.device_id())
    );
    let code = pending.code();
    assert!(!format!("{code:?}").contains(&format!("{:?}", code.secret.as_bytes())));
}
