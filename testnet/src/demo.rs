//! `tidings-testnet demo`: a relay process and two users, online and offline delivery, a
//! crash of the relay in between, every tick shown. Exits non-zero unless everything arrived.

use std::{future::Future, path::Path, time::Duration};

use anyhow::{Context, bail, ensure};
use tidings_client::{Client, Event, MessageStatus, Session};
use tidings_relay::RelayConfig;

use crate::process::RelayProcess;

/// How long any one step may wait.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .with_context(|| format!("timed out after {STEP_TIMEOUT:?} while {what}"))?
}

/// Waits for a status change of message `id`.
async fn wait_status(
    session: &mut Session,
    id: tidings_protocol::EnvelopeId,
    want: MessageStatus,
) -> anyhow::Result<()> {
    within(&format!("waiting for {want:?}"), async {
        loop {
            if let Event::Status {
                id: got, status, ..
            } = session.next_event().await?
                && got == id
                && status.rank() >= want.rank()
            {
                return Ok(());
            }
        }
    })
    .await
}

async fn user(work: &Path, name: &str, relay: &RelayProcess) -> anyhow::Result<Client> {
    let client = Client::init(&work.join(name), None)?;
    within("registering", async {
        Ok(client.register(relay.addr.clone(), None).await?)
    })
    .await?;
    Ok(client)
}

fn show(client: &Client, peer: &str) -> anyhow::Result<()> {
    for record in client.history(peer)? {
        println!(
            "      {:<34} {}",
            format!("\"{}\"", record.text),
            record.status.ticks()
        );
    }
    Ok(())
}

/// Runs the demo in `work`; Ok(()) only if every message arrived, in order, with its ticks.
pub async fn run(work: &Path) -> anyhow::Result<()> {
    println!("Tidings demo: one relay process on loopback, two users, end-to-end encrypted.\n");
    let relay_dir = work.join("relay");
    let config = RelayConfig {
        name: "demo-relay".into(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        ..RelayConfig::default()
    };
    tidings_relay::init(&relay_dir, &config)?;
    let mut relay = RelayProcess::start(&relay_dir, "/ip4/127.0.0.1/tcp/0").await?;
    println!(
        "relay      started as process {} at {}",
        relay.pid(),
        relay.addr
    );

    let alice = user(work, "alice", &relay).await?;
    let bob = user(work, "bob", &relay).await?;
    alice.add_contact("bob", &bob.card(Some("Bob".into()))?)?;
    bob.add_contact("alice", &alice.card(Some("Alice".into()))?)?;
    println!("users      alice and bob registered and swapped contact cards\n");

    println!("1. Bob is online; Alice sends.");
    let mut bob_session = within("connecting", async { Ok(bob.connect().await?) }).await?;
    bob_session.subscribe().await?;
    let mut alice_session = within("connecting", async { Ok(alice.connect().await?) }).await?;
    alice_session.subscribe().await?;
    let first = within("sending", async {
        Ok(alice_session
            .send_text("bob", "Hi Bob! Are you there?")
            .await?)
    })
    .await?;
    ensure!(
        first.status == MessageStatus::Sent,
        "the relay did not accept the message: {:?}",
        first.status
    );
    println!(
        "   alice -> bob  \"{}\"  ✓ sent (stored by the relay)",
        first.text
    );
    let got = within("waiting for Bob to receive it", async {
        loop {
            if let Event::Message(message) = bob_session.next_event().await? {
                return Ok(message);
            }
        }
    })
    .await?;
    ensure!(got.text == first.text, "Bob got {:?}", got.text);
    println!("   bob got       \"{}\"", got.text);
    wait_status(&mut alice_session, first.id, MessageStatus::Delivered).await?;
    println!("   alice sees    ✓✓ delivered");
    bob_session.mark_read("alice").await?;
    wait_status(&mut alice_session, first.id, MessageStatus::Read).await?;
    println!("   alice sees    ✓✓ read\n");

    println!("2. Bob goes offline; Alice sends three more.");
    bob_session.close().await;
    let mut offline = Vec::new();
    for text in [
        "Message one while you were away",
        "Message two",
        "Message three",
    ] {
        let message = within("sending", async {
            Ok(alice_session.send_text("bob", text).await?)
        })
        .await?;
        ensure!(
            message.status == MessageStatus::Sent,
            "not accepted: {:?}",
            message.status
        );
        println!("   alice -> bob  \"{text}\"  ✓ sent");
        offline.push(message);
    }
    alice_session.close().await;

    println!("\n3. The relay crashes (SIGKILL) and is restarted.");
    relay.crash_and_restart().await?;
    println!("   relay restarted as process {}", relay.pid());

    println!("\n4. Bob comes back online.");
    let mut bob_session = within("reconnecting", async { Ok(bob.connect().await?) }).await?;
    let events = within("syncing", async {
        Ok(bob_session.sync(STEP_TIMEOUT).await?)
    })
    .await?;
    let arrived: Vec<_> = events
        .into_iter()
        .filter_map(|event| match event {
            Event::Message(message) => Some(message),
            _ => None,
        })
        .collect();
    for message in &arrived {
        println!("   bob got       \"{}\"", message.text);
    }
    let want: Vec<_> = offline.iter().map(|m| m.id).collect();
    let have: Vec<_> = arrived.iter().map(|m| m.id).collect();
    ensure!(
        have == want,
        "Bob got {} of 3 offline messages, or out of order",
        have.len()
    );
    println!("   all three arrived, in order");

    let mut alice_session = within("reconnecting", async { Ok(alice.connect().await?) }).await?;
    alice_session.subscribe().await?;
    for message in &offline {
        wait_status(&mut alice_session, message.id, MessageStatus::Delivered).await?;
    }
    println!("   alice sees    ✓✓ delivered for all three\n");

    println!("Alice's view of the conversation:");
    show(&alice, "bob")?;
    let bob_history = bob.history("alice")?;
    if bob_history.len() != 4 {
        bail!(
            "Bob's history has {} messages, expected 4",
            bob_history.len()
        );
    }
    relay.stop().await?;
    println!("\nOK: 4 of 4 messages delivered once, in order, across a relay crash.");
    Ok(())
}
