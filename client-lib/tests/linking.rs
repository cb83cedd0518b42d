//! Linking devices over a real relay: a new device shows a code, the device holding the account key approves it, the new device takes its package, registers and chats; listing and removing devices; exporting and importing the account.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{RelayDir, TestUser, dial_addr, texts, wait_for};
use tidings_client::{Client, ClientError, DeviceError, DeviceLink, Event};
use tidings_keys::NoAccountKey;
use tidings_protocol::{ErrorCode, LinkCode, LinkSecret};

/// The error of an operation expected to fail.
fn failed<T>(result: Result<T, ClientError>) -> ClientError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(error) => error,
    }
}

fn is_no_account_key(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Device(DeviceError::NoAccountKey(NoAccountKey))
    )
}

#[tokio::test]
async fn a_linked_device_is_listed_and_holds_no_account_key() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let TestUser {
        dir: laptop_dir,
        client: laptop,
    } = alice.link_device(&relay, "laptop").await;

    assert_eq!(laptop.user_id(), alice.client.user_id());
    assert_ne!(laptop.address(), alice.client.address());
    assert!(!laptop.holds_account_key());
    assert!(alice.client.holds_account_key());

    let devices = alice.client.devices().await.unwrap();
    let names: Vec<(&str, bool)> = devices
        .iter()
        .map(|device| (device.name.as_str(), device.this_device))
        .collect();
    assert_eq!(names.len(), 2, "{devices:?}");
    assert!(names.contains(&("laptop", false)), "{devices:?}");
    let seen_by_laptop = laptop.devices().await.unwrap();
    assert!(
        seen_by_laptop
            .iter()
            .any(|device| device.this_device && device.name == "laptop")
    );

    // What needs the account key is refused on the linked device, with a typed error.
    let other = DeviceLink::start(dial_addr(&relay)).await.unwrap();
    let error = laptop.approve_link(&other.code(), None).await.unwrap_err();
    assert!(is_no_account_key(&error), "{error:?}");
    let error = laptop
        .remove_device(alice.client.address().device)
        .await
        .unwrap_err();
    assert!(is_no_account_key(&error), "{error:?}");
    let error = failed(laptop.move_home(dial_addr(&relay), None).await);
    assert!(is_no_account_key(&error), "{error:?}");
    // Groups it may make and administer: it signs with its device key and certificate.
    let mut session = laptop.connect().await.unwrap();
    session.create_group("hikers", &[]).await.unwrap();
    drop(session);
    let export = laptop_dir.path().join("account.export");
    let error = laptop.export_account(&export, "pass").unwrap_err();
    assert!(
        matches!(error, ClientError::Device(DeviceError::Export(_))),
        "{error:?}"
    );
    assert!(!export.exists());
    // The key file reopens as a linked device.
    drop(laptop);
    let reopened = Client::open(laptop_dir.path(), None).unwrap();
    assert!(!reopened.holds_account_key());
}

#[tokio::test]
async fn a_package_under_another_secret_is_refused_and_nothing_is_saved() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let dir = tempfile::tempdir().unwrap();
    let new = DeviceLink::start(dial_addr(&relay)).await.unwrap();
    // Alice approves a code with the right device but another secret (a mistyped code).
    let wrong = LinkCode {
        device: new.code().device,
        secret: LinkSecret::from_bytes([7; 32]),
    };
    alice.client.approve_link(&wrong, None).await.unwrap();
    let error = failed(new.finish(dir.path(), None, common::LINK_WAIT).await);
    assert!(
        matches!(
            error,
            ClientError::Device(DeviceError::Link(tidings_keys::LinkError::WrongSecret))
        ),
        "{error:?}"
    );
    assert!(!dir.path().join(tidings_client::KEY_FILE).exists());
}

#[tokio::test]
async fn waiting_for_a_package_that_never_comes_times_out() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let dir = tempfile::tempdir().unwrap();
    let new = DeviceLink::start(dial_addr(&relay)).await.unwrap();
    assert_eq!(new.poll().await.unwrap(), None);
    let error = failed(
        new.finish(dir.path(), None, Duration::from_millis(1500))
            .await,
    );
    assert!(
        matches!(error, ClientError::Device(DeviceError::LinkTimedOut(_))),
        "{error:?}"
    );
}

/// Needs the relay's registration against the held list and per-device mailboxes
/// (i14-relay), and the client's per-device fan-out (i14-client).
#[tokio::test]
async fn a_linked_device_sends_and_receives() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    let TestUser {
        dir: _laptop_dir,
        client: laptop,
    } = alice.link_device(&relay, "laptop").await;
    bob.befriend("alice", &alice);
    laptop
        .add_contact("bob", &bob.client.card(None).unwrap())
        .unwrap();

    let mut bob_session = bob.online().await;
    let mut phone_session = alice.online().await;
    let mut laptop_session = laptop.connect().await.unwrap();
    laptop_session.subscribe().await.unwrap();
    laptop_session
        .send_text("bob", "from the laptop")
        .await
        .unwrap();
    let events = wait_for(&mut bob_session, |event| matches!(event, Event::Message(_))).await;
    assert_eq!(texts(&events), vec!["from the laptop".to_string()]);

    bob_session.send_text("alice", "hi Alice").await.unwrap();
    let events = wait_for(
        &mut laptop_session,
        |event| matches!(event, Event::Message(message) if message.text == "hi Alice"),
    )
    .await;
    assert!(texts(&events).contains(&"hi Alice".to_string()));
    // The device holding the account key gets it too.
    wait_for(
        &mut phone_session,
        |event| matches!(event, Event::Message(message) if message.text == "hi Alice"),
    )
    .await;
}

/// Needs the relay's revocation on a new list (i14-relay).
#[tokio::test]
async fn a_removed_device_is_revoked() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let TestUser {
        dir: _laptop_dir,
        client: laptop,
    } = alice.link_device(&relay, "laptop").await;
    let laptop_id = laptop.address().device;

    let error = alice
        .client
        .remove_device(alice.client.address().device)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Device(DeviceError::RemoveSelf)),
        "{error:?}"
    );
    let version = alice.client.remove_device(laptop_id).await.unwrap();
    let devices = alice.client.devices().await.unwrap();
    assert!(devices.iter().all(|device| device.device != laptop_id));
    assert_eq!(devices.len(), 1);
    // This device stops addressing it at once: the list it keeps is the new one.
    let kept = alice
        .client
        .store()
        .device_list(&alice.client.user_id())
        .unwrap()
        .unwrap();
    assert_eq!(kept.list.version, version);
    assert!(!kept.contains(&laptop_id));
    assert!(version >= 2);
    let error = alice.client.remove_device(laptop_id).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Device(DeviceError::UnknownDevice(id)) if id == laptop_id),
        "{error:?}"
    );

    // Its records are gone: it is not registered, and may not register again.
    let refused = match laptop.connect().await {
        Ok(mut session) => session.subscribe().await.unwrap_err(),
        Err(error) => error,
    };
    assert!(
        matches!(&refused, ClientError::Refused(answer)
            if answer.code == ErrorCode::NotRegistered || answer.code == ErrorCode::DeviceRevoked),
        "{refused:?}"
    );
    let refused = failed(laptop.register(dial_addr(&relay), None).await);
    assert!(
        matches!(&refused, ClientError::Refused(answer) if answer.code == ErrorCode::DeviceRevoked),
        "{refused:?}"
    );
}

/// Needs the relay's registration with `Register.list` (i14-relay).
#[tokio::test]
async fn an_imported_account_registers_as_a_new_device_on_the_held_list() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let export_dir = tempfile::tempdir().unwrap();
    let export = export_dir.path().join("alice.export");
    alice.client.export_account(&export, "horse").unwrap();

    let restored_dir = tempfile::tempdir().unwrap();
    let error = failed(Client::init_import(
        restored_dir.path(),
        &export,
        "wrong",
        None,
    ));
    assert!(
        matches!(
            error,
            ClientError::Keys(tidings_keys::KeyFileError::WrongPassphrase)
        ),
        "{error:?}"
    );
    let restored = Client::init_import(restored_dir.path(), &export, "horse", None).unwrap();
    assert_eq!(restored.user_id(), alice.client.user_id());
    assert_ne!(restored.address(), alice.client.address());
    assert!(restored.holds_account_key());
    restored.register(dial_addr(&relay), None).await.unwrap();

    let devices = restored.devices().await.unwrap();
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert!(
        devices
            .iter()
            .any(|device| device.device == alice.client.address().device)
    );
    assert!(devices.iter().any(|device| device.this_device));
}

#[tokio::test]
async fn linking_past_the_relays_device_limit_is_refused_and_no_package_is_left() {
    let relay_dir =
        tidings_relay::testing::RelayDir::temp(|config| config.limits.max_devices_per_account = 2)
            .unwrap();
    let relay = relay_dir.start(None).await.unwrap();
    let alice = TestUser::register(&relay).await;
    let TestUser {
        dir: _laptop_dir,
        client: _laptop,
    } = alice.link_device(&relay, "laptop").await;

    let third = DeviceLink::start(dial_addr(&relay)).await.unwrap();
    let error = failed(
        alice
            .client
            .approve_link(&third.code(), Some("tablet"))
            .await,
    );
    assert!(
        matches!(&error, ClientError::Refused(answer)
            if answer.code == ErrorCode::QuotaExceeded || answer.code == ErrorCode::DeviceLimit),
        "{error:?}"
    );
    assert_eq!(third.poll().await.unwrap(), None);
    assert_eq!(alice.client.devices().await.unwrap().len(), 2);
}

fn tidings(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TIDINGS_PASSPHRASE")
        .env("TIDINGS_EXPORT_PASSPHRASE", "export pass");
    command
}

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let output = tidings(dir, args).output().unwrap();
    assert!(
        output.status.success(),
        "tidings {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn device_count(dir: &std::path::Path) -> usize {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(dir, &["device", "list", "--json"])).unwrap();
    listed.as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn link_export_and_import_with_the_cli() {
    use std::io::BufRead;

    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let address = dial_addr(&relay).to_string();
    let home = tempfile::tempdir().unwrap();
    let (alice, laptop, restored) = (
        home.path().join("alice"),
        home.path().join("laptop"),
        home.path().join("restored"),
    );
    ok(&alice, &["init"]);
    ok(&alice, &["register", "--relay", &address]);

    let mut linking = tidings(
        &laptop,
        &["device", "link", "--relay", &address, "--name", "laptop"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = linking.stdout.take().unwrap();
    let (code, rest, qr) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut qr = Vec::new();
        let code = lines
            .by_ref()
            .map(Result::unwrap)
            .find_map(|line| {
                let code = line.strip_prefix("link code: ").map(str::to_string);
                qr.push(line);
                code
            })
            .unwrap();
        (code, lines, qr)
    })
    .await
    .unwrap();
    // The QR code of the link code, drawn with half blocks, comes first.
    assert!(
        qr.len() > 10
            && qr
                .iter()
                .any(|line| line.contains('▀') || line.contains('▄')),
        "{qr:#?}"
    );
    assert!(code.starts_with("tidings-link:"), "{code}");
    let added = ok(&alice, &["device", "add", &code, "--name", "laptop"]);
    assert!(added.contains("approved device"), "{added}");
    let finished = tokio::task::spawn_blocking(move || {
        let printed: Vec<String> = rest.map(Result::unwrap).collect();
        (linking.wait().unwrap(), printed.join("\n"))
    })
    .await
    .unwrap();
    assert!(finished.0.success(), "{}", finished.1);
    assert!(
        finished.1.contains("linked as \"laptop\""),
        "{}",
        finished.1
    );
    assert_eq!(device_count(&alice), 2);

    // The linked device cannot export; the primary can, and an import is a third device.
    let export = home.path().join("alice.export");
    let export_arg = export.to_str().unwrap();
    let refused = tidings(&laptop, &["account", "export", export_arg])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not hold the account key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    ok(&alice, &["account", "export", export_arg]);
    let imported = ok(&restored, &["init", "--import", export_arg]);
    assert!(imported.contains("restored account"), "{imported}");
    ok(&restored, &["register", "--relay", &address]);
    assert_eq!(device_count(&restored), 3);
}

/// Bob held Alice's one-device list; linking her laptop tells him at once (a notice over
/// Olm), so his very next message reaches the laptop too, not only after his list check
/// expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_encrypt_to_a_new_device_as_soon_as_it_is_linked() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let mut bob_session = bob.online().await;
    bob_session.send_text("alice", "before").await.unwrap();
    let held = bob.client.store().device_list(&alice.client.user_id());
    assert_eq!(held.unwrap().unwrap().list.devices.len(), 1);

    let TestUser {
        dir: _laptop_dir,
        client: laptop,
    } = alice.link_device(&relay, "laptop").await;
    // Alice's phone flushes (its app does so whenever it runs): the notice goes out.
    alice.sync(Duration::from_secs(2)).await;
    // Bob's session takes the notice; his next message goes to both of Alice's devices.
    let alice_id = alice.client.user_id();
    wait_for(
        &mut bob_session,
        |event| matches!(event, Event::DevicesChanged { user } if *user == alice_id),
    )
    .await;
    bob_session.send_text("alice", "after").await.unwrap();
    let mut laptop_session = laptop.connect().await.unwrap();
    let got = texts(&laptop_session.sync(Duration::from_secs(5)).await.unwrap());
    assert!(got.contains(&"after".to_string()), "{got:?}");
    relay.shutdown().await;
}

/// Removing the laptop tells Bob at once: his next group message, with no 1:1 message in
/// between to bounce off the laptop, goes under a new Megolm session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_rotate_as_soon_as_a_device_is_removed() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let TestUser {
        dir: _laptop_dir,
        client: laptop,
    } = alice.link_device(&relay, "laptop").await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let mut bob_session = bob.online().await;
    let group = bob_session.create_group("pair", &["alice"]).await.unwrap();
    bob_session.send_text("pair", "group before").await.unwrap();
    let got = texts(
        &laptop
            .connect()
            .await
            .unwrap()
            .sync(Duration::from_secs(5))
            .await
            .unwrap(),
    );
    assert!(got.contains(&"group before".to_string()), "{got:?}");
    let store = bob.client.store();
    let bob_identity =
        tidings_keys::Identity::load(&bob.dir.path().join(tidings_client::KEY_FILE), None).unwrap();
    let before = store
        .group_outbound_session_id(&group, bob_identity.store_key())
        .unwrap();

    alice
        .client
        .remove_device(laptop.address().device)
        .await
        .unwrap();
    let alice_id = alice.client.user_id();
    wait_for(
        &mut bob_session,
        |event| matches!(event, Event::DevicesChanged { user } if *user == alice_id),
    )
    .await;
    bob_session.send_text("pair", "group after").await.unwrap();
    let after = store
        .group_outbound_session_id(&group, bob_identity.store_key())
        .unwrap();
    assert!(before.is_some());
    assert_ne!(after, before, "Bob's sending session for the group rotated");
    relay.shutdown().await;
}
