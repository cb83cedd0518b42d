//! `tidings-relay status` over a relay process: its numbers are what was sent.

use std::os::unix::fs::PermissionsExt;

use ed25519_dalek::SigningKey;
use tidings_protocol::{
    RawEnvelope,
    client::{Response, SendOutcome},
};

use crate::{
    common::{RawDevice, address_of, tidings_client_peer},
    process::{RelayProcess, cli},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_numbers_match_what_was_sent() {
    let started_ms = tidings_protocol::now_ms();
    let relay = RelayProcess::start(|_| {}).await;
    let mut alice = RawDevice::registered(&relay.addr).await;
    let bob = RawDevice::registered(&relay.addr).await;
    let bob_address = bob.address();
    drop(bob);

    let for_bob: Vec<RawEnvelope> = (0..5u8)
        .map(|i| {
            alice
                .envelope_to(bob_address, &vec![i; 100 + usize::from(i) * 37])
                .sign(&alice.device)
        })
        .collect();
    let mailbox_bytes: usize = for_bob.iter().map(RawEnvelope::len).sum();
    // Someone homed nowhere yet: the envelope waits in the outbox.
    let nobody = address_of(
        &SigningKey::from_bytes(&rand::random()),
        &SigningKey::from_bytes(&rand::random()),
    );
    let queued = alice.envelope_to(nobody, &[7; 333]).sign(&alice.device);
    let outbox_bytes = queued.len();
    let mut all = for_bob;
    all.push(queued);
    let Ok(Response::Sent { outcomes }) = alice.send(all).await else {
        panic!("send failed");
    };
    assert!(
        outcomes.iter().all(|o| *o == SendOutcome::Accepted),
        "{outcomes:?}"
    );

    // Bob's session ends a moment after his stream closes.
    let mut status = relay.json(&["status", "--json"]).await;
    for _ in 0..100 {
        if status["devices_online"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = relay.json(&["status", "--json"]).await;
    }
    assert_eq!(status["devices_online"], 1);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        status["peer_id"],
        tidings_client_peer(&relay.addr).to_string()
    );
    let listen = status["listen_addrs"].as_array().unwrap();
    let tcp = relay.addr.to_string();
    assert!(
        listen.iter().any(|a| tcp.starts_with(a.as_str().unwrap())),
        "{listen:?} does not hold {tcp}"
    );
    assert_eq!(status["users"], 2);
    assert_eq!(status["suspended_users"], 0);
    assert_eq!(status["devices"], 2);
    assert_eq!(status["mailbox_entries"], 5);
    assert_eq!(status["mailbox_bytes"], mailbox_bytes);
    assert_eq!(status["outbox_entries"], 1);
    assert_eq!(status["outbox_bytes"], outbox_bytes);
    assert_eq!(status["media_blobs"], 0);
    assert_eq!(status["dht_routing_peers"], 0);
    let files = status["database_files"].as_array().unwrap();
    let redb = files
        .iter()
        .find(|file| file[0] == "relay.redb")
        .expect("relay.redb listed");
    assert!(redb[1].as_u64().unwrap() > 0);
    assert!(status["last_commit_ms"].as_u64().unwrap() >= started_ms - 1000);
    assert!(status["uptime_secs"].as_u64().is_some());

    let bob_id = bob_address.user.to_string();
    let shown = relay.json(&["users", "show", &bob_id, "--json"]).await;
    assert_eq!(shown["summary"]["user"], bob_id.as_str());
    assert_eq!(shown["summary"]["devices"], 1);
    assert_eq!(shown["summary"]["mailbox_entries"], 5);
    assert_eq!(shown["summary"]["mailbox_bytes"], mailbox_bytes);
    assert_eq!(shown["devices"][0]["mailbox_entries"], 5);
    assert_eq!(shown["devices"][0]["online"], false);
    let alice_id = alice.address().user.to_string();
    let alice_shown = relay.json(&["users", "show", &alice_id, "--json"]).await;
    assert_eq!(alice_shown["summary"]["outbox_entries"], 1);
    assert_eq!(alice_shown["devices"][0]["online"], true);
    let listed = relay.json(&["users", "list", "--json"]).await;
    let users = listed["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().any(|user| user["user"] == bob_id.as_str()));

    let text = relay.ok(&["status"]).await;
    assert!(text.contains("5 entries"), "{text}");
    let (ok, _, err) = relay.cli(&["users", "show", "not-a-user"]).await;
    assert!(!ok && err.contains("is not a user id"), "{err}");

    // Owner-only, and gone once the relay stops cleanly.
    let socket = relay.path().join(tidings_relay::admin::ADMIN_SOCKET);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = relay.stop().await;
    assert!(!socket.exists());
    let (ok, _, err) = cli(dir.path(), &["status"]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "no relay is running on {} (no admin socket)",
            dir.path().display()
        )),
        "{err}"
    );
}
