//! The `tidings` command line, run as a person would: two users, one relay.

use crate::common::cli::{ok, tidings};
use crate::common::{RelayDir, dial_addr};

#[tokio::test(flavor = "multi_thread")]
async fn two_people_chat_with_the_cli() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let address = dial_addr(&relay).to_string();
    let home = tempfile::tempdir().unwrap();
    let alice = home.path().join("alice");
    let bob = home.path().join("bob");

    let created = ok(&alice, &["init"]);
    assert!(created.contains("your user id:"));
    ok(&bob, &["init"]);
    assert!(ok(&alice, &["register", "--relay", &address]).contains("registered at relay"));
    ok(&bob, &["register", "--relay", &address]);
    let bob_card = ok(&bob, &["card", "--name", "Bob"]);
    let alice_card = ok(&alice, &["card"]);
    assert!(bob_card.starts_with("tidings:"));
    ok(&alice, &["contact", "add", "bob", bob_card.trim()]);
    ok(&bob, &["contact", "add", "alice", alice_card.trim()]);
    assert!(ok(&alice, &["contact", "list"]).contains("bob"));

    assert!(ok(&alice, &["send", "bob", "hello from the shell"]).contains("✓ sent to bob"));
    // Bob's history fetches from the relay, which also sends Alice the ✓✓ receipt.
    let bob_history = ok(&bob, &["history", "alice"]);
    assert!(
        bob_history.contains("alice: hello from the shell"),
        "{bob_history}"
    );
    let alice_history = ok(&alice, &["history", "bob"]);
    assert!(
        alice_history.contains("me: hello from the shell  ✓✓"),
        "{alice_history}"
    );
    assert!(ok(&bob, &["read", "alice"]).contains("marked 1 message(s)"));
    assert!(ok(&alice, &["history", "bob"]).contains("✓✓ read"));

    // Mistakes get clear errors and a failing exit code.
    let unknown = tidings(&alice, &["send", "carol", "hi"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no contact named \"carol\""));
    let bad_card = tidings(&alice, &["contact", "add", "x", "not-a-card"]);
    assert!(String::from_utf8_lossy(&bad_card.stderr).contains("not a contact card"));
    let not_init = tidings(&home.path().join("nobody"), &["card"]);
    assert!(String::from_utf8_lossy(&not_init.stderr).contains("run `tidings init` first"));

    // Presence: Bob sees Alice's last seen until she hides it.
    let shown = ok(&bob, &["presence", "show", "alice"]);
    assert!(shown.contains("alice: offline"), "{shown}");
    assert!(ok(&alice, &["presence", "set", "nobody"]).contains("hidden from everyone"));
    let hidden = ok(&bob, &["presence", "show", "alice"]);
    assert!(hidden.contains("alice: not sharing presence"), "{hidden}");
    assert!(ok(&alice, &["presence", "set", "contacts"]).contains("your 1 contacts only"));
    assert!(ok(&bob, &["presence", "show", "alice"]).contains("alice: offline"));

    // With the relay gone, a message is queued, and sent once it is back.
    let listen = relay.listen_addrs()[0].clone();
    relay.shutdown().await;
    assert!(ok(&alice, &["send", "bob", "while you were down"]).contains("queued"));
    assert!(ok(&alice, &["status"]).contains("waiting to be sent: 1"));
    let mut relay_dir = relay_dir;
    relay_dir.config.listen = vec![listen.to_string()];
    let relay = relay_dir.start().await;
    ok(&alice, &["history", "bob"]);
    assert!(ok(&alice, &["status"]).contains("waiting to be sent: 0"));
    assert!(ok(&bob, &["history", "alice"]).contains("while you were down"));
    relay.shutdown().await;
}

#[test]
fn help_explains_every_command() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "init", "register", "card", "contact", "send", "listen", "history", "read", "chat",
        "presence", "group",
    ] {
        assert!(
            help.contains(command),
            "--help does not mention {command}:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_chat_from_the_shell() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let address = dial_addr(&relay).to_string();
    let home = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| home.path().join(name))
        .collect();
    for dir in &dirs {
        ok(dir, &["init"]);
        ok(dir, &["register", "--relay", &address]);
    }
    let cards: Vec<String> = dirs
        .iter()
        .map(|dir| ok(dir, &["card"]).trim().to_string())
        .collect();
    for (index, dir) in dirs.iter().enumerate() {
        for (other, name) in ["alice", "bob", "carol"].iter().enumerate() {
            if other != index {
                ok(dir, &["contact", "add", name, &cards[other]]);
            }
        }
    }
    let (alice, bob, carol) = (&dirs[0], &dirs[1], &dirs[2]);
    assert!(
        ok(alice, &["group", "create", "team", "bob", "carol"]).contains("created group \"team\"")
    );
    assert!(ok(alice, &["group", "send", "team", "standup at 10"]).contains("✓ sent to team"));
    let bob_view = ok(bob, &["history", "team"]);
    assert!(bob_view.contains("alice: standup at 10"), "{bob_view}");
    ok(carol, &["history", "team"]);
    ok(bob, &["read", "team"]);
    let info = ok(alice, &["group", "info", "team", "--receipts"]);
    assert!(info.contains("members (3):"), "{info}");
    assert!(info.contains("admin (you)"), "{info}");
    assert!(
        info.contains("delivered to 2 of 2, read by 1 of 2"),
        "{info}"
    );
    assert!(ok(bob, &["group", "list"]).contains("team"));

    // Bob is no admin: his change is refused with a reason; then he leaves.
    let refused = tidings(bob, &["group", "add", "team", "carol"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("may not make this change"), "{stderr}");
    ok(bob, &["group", "leave", "team"]);
    ok(alice, &["history", "team"]);
    assert!(ok(alice, &["group", "info", "team"]).contains("members (2):"));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_are_renamed_and_removed_from_the_shell() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let address = dial_addr(&relay).to_string();
    let home = tempfile::tempdir().unwrap();
    let (alice, bob) = (home.path().join("alice"), home.path().join("bob"));
    for dir in [&alice, &bob] {
        ok(dir, &["init"]);
        ok(dir, &["register", "--relay", &address]);
    }
    let bob_card = ok(&bob, &["card"]);
    ok(&alice, &["contact", "add", "bob", bob_card.trim()]);
    assert!(ok(&alice, &["contact", "rename", "bob", "robert"]).contains("renamed bob to robert"));
    let listed = ok(&alice, &["contact", "list"]);
    assert!(listed.starts_with("robert\t"), "{listed}");
    assert!(
        !tidings(&alice, &["contact", "rename", "bob", "rob"])
            .status
            .success()
    );
    ok(&alice, &["contact", "remove", "robert"]);
    assert!(ok(&alice, &["contact", "list"]).contains("no contacts yet"));
    relay.shutdown().await;
}
