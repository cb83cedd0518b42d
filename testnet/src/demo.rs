//! `tidings-testnet demo`: relay processes and three users, online and offline delivery, a
//! crash of a relay in between, a group, Alice on a second device; every tick shown. Exits
//! non-zero unless everything arrived.

use std::{future::Future, path::Path, time::Duration};

use anyhow::{Context, bail, ensure};
use tidings_client::{Client, Conversation, DeviceLink, Event, MessageStatus, Session};

use crate::{cluster::Cluster, process::RelayProcess};

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
    println!("Tidings demo: three relay processes on loopback, two users, end-to-end encrypted.\n");
    let mut cluster = Cluster::start(work, 3).await?;
    for (index, relay) in cluster.relays.iter().enumerate() {
        let role = if index == 0 {
            "starts the network"
        } else {
            "joined through relay 1"
        };
        println!(
            "relay {}    process {} at {} ({role})",
            index + 1,
            relay.pid(),
            relay.addr
        );
    }
    let alice = user(work, "alice", &cluster.relays[0]).await?;
    let bob = user(work, "bob", &cluster.relays[2]).await?;
    let carol = user(work, "carol", &cluster.relays[1]).await?;
    alice.add_contact("bob", &bob.card(Some("Bob".into()))?)?;
    alice.add_contact("carol", &carol.card(Some("Carol".into()))?)?;
    bob.add_contact("alice", &alice.card(Some("Alice".into()))?)?;
    println!("users      alice (home: relay 1), carol (relay 2) and bob (relay 3);");
    println!("           relay 1 finds the others' homes through the DHT\n");

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
        "   alice -> bob  \"{}\"  ✓ sent (stored by relay 1)",
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
    println!(
        "   bob got       \"{}\" (relay 1 -> relay 3 -> bob)",
        got.text
    );
    wait_status(&mut alice_session, first.id, MessageStatus::Delivered).await?;
    println!("   alice sees    ✓✓ delivered");
    bob_session.mark_read("alice").await?;
    wait_status(&mut alice_session, first.id, MessageStatus::Read).await?;
    println!("   alice sees    ✓✓ read\n");

    println!("2. Bob goes offline, and his relay (relay 3) crashes (SIGKILL).");
    bob_session.close().await;
    let bob_relay = &mut cluster.relays[2];
    bob_relay.kill9().await?;
    println!("   Alice sends three messages; relay 1 keeps them in its outbox.");
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

    println!("\n3. Relay 3 is restarted; relay 1's outbox delivers to it.");
    bob_relay.restart().await?;
    println!("   relay 3 restarted as process {}", bob_relay.pid());

    println!("\n4. Bob comes back online.");
    let arrived = within("waiting for the offline messages", async {
        let mut arrived = Vec::new();
        while arrived.len() < offline.len() {
            let mut session = bob.connect().await?;
            for event in session.sync(STEP_TIMEOUT).await? {
                if let Event::Message(message) = event {
                    println!("   bob got       \"{}\"", message.text);
                    arrived.push(message);
                }
            }
            if arrived.len() < offline.len() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(arrived)
    })
    .await?;
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
    group_step(&alice, &mut alice_session, &bob, &carol).await?;
    alice_session.close().await;
    laptop_step(work, &cluster.relays[0], &alice, &bob).await?;
    cluster.stop().await?;
    println!(
        "\nOK: every message delivered once, in order, across relays, a relay crash, a group and two devices."
    );
    Ok(())
}

/// Step 5: a group across the three relays, with receipt counts.
async fn group_step(
    alice: &Client,
    alice_session: &mut Session,
    bob: &Client,
    carol: &Client,
) -> anyhow::Result<()> {
    println!("\n5. A group across the three relays.");
    let group = within("creating a group", async {
        Ok(alice_session
            .create_group("hikers", &["bob", "carol"])
            .await?)
    })
    .await?;
    println!("   alice created \"hikers\" with bob and carol (a descriptor signed by alice)");
    let mut members = Vec::new();
    for (name, member) in [("bob", bob), ("carol", carol)] {
        let session = within(
            &format!("waiting for {name} to learn of the group"),
            async {
                loop {
                    let mut session = member.connect().await?;
                    session.sync(Duration::from_secs(2)).await?;
                    if member.store().group(&group)?.is_some() {
                        return Ok(session);
                    }
                }
            },
        )
        .await?;
        members.push((name, session));
    }
    let note = within("sending to the group", async {
        Ok(alice_session
            .send_text("hikers", "Saturday, 8:00 at the trailhead")
            .await?)
    })
    .await?;
    ensure!(
        note.status == MessageStatus::Sent,
        "not accepted: {:?}",
        note.status
    );
    println!(
        "   alice -> hikers  \"{}\"  ✓ sent (one ciphertext; relay 1 fans it out)",
        note.text
    );
    for (name, session) in &mut members {
        let got = within("waiting for the group message", async {
            loop {
                if let Event::Message(message) = session.next_event().await?
                    && message.id == note.id
                {
                    return Ok(message);
                }
            }
        })
        .await?;
        println!("   {:<13} \"{}\"", format!("{name} got"), got.text);
    }
    members[1].1.mark_read("hikers").await?;
    within("waiting for the receipts", async {
        loop {
            let counts = alice.receipt_counts(&note.id)?;
            if counts.delivered == 2 && counts.read == 1 {
                println!(
                    "   alice sees    delivered to {} of {}, read by {} of {}",
                    counts.delivered, counts.members, counts.read, counts.members
                );
                return Ok(());
            }
            alice_session.next_event().await?;
        }
    })
    .await
}

/// Whether `device` shows nothing from `peer` unread.
fn all_read(device: &Client, peer: &Client) -> anyhow::Result<bool> {
    Ok(device
        .store()
        .history(&Conversation::Direct(peer.user_id()))?
        .iter()
        .all(|record| record.status != MessageStatus::Received))
}

/// Step 6: Alice links her laptop; Bob's message reaches both devices; read on the laptop,
/// it shows read on the phone and at Bob.
async fn laptop_step(
    work: &Path,
    home: &RelayProcess,
    alice: &Client,
    bob: &Client,
) -> anyhow::Result<()> {
    println!("\n6. Alice links her laptop as a second device.");
    let new = within("starting the link", async {
        Ok(DeviceLink::start(home.addr.clone()).await?)
    })
    .await?;
    let code = new.code();
    println!("   the laptop shows a one-time link code ({})", code.device);
    let laptop_dir = work.join("alice-laptop");
    let waiting = tokio::spawn(async move { new.finish(&laptop_dir, None, STEP_TIMEOUT).await });
    let approved = within("approving the laptop", async {
        Ok(alice.approve_link(&code, Some("laptop")).await?)
    })
    .await?;
    let (laptop, _package) = within("linking the laptop", async { Ok(waiting.await??) }).await?;
    println!(
        "   alice's phone approved it: her device list (version {}) names phone and laptop",
        approved.list_version
    );
    let mut phone = within("connecting the phone", async { Ok(alice.connect().await?) }).await?;
    phone.subscribe().await?;
    // The phone sends the new device what the account holds (contacts, groups, history).
    phone.flush().await?;
    let mut on_laptop = within("connecting the laptop", async {
        Ok(laptop.connect().await?)
    })
    .await?;
    on_laptop.subscribe().await?;

    within("waiting for the laptop to get Alice's contacts", async {
        while laptop.resolve("bob").is_err() {
            on_laptop.next_event().await?;
        }
        Ok(())
    })
    .await?;
    println!("   the laptop got Alice's contacts from her phone (end-to-end encrypted)");

    let mut bob_session = within("connecting", async { Ok(bob.connect().await?) }).await?;
    bob_session.subscribe().await?;
    // Bob's client holds Alice's device list from before; a message from a device it does
    // not know makes it ask for her list again.
    let hello = "Hello from my new laptop";
    within("sending from the laptop", async {
        Ok(on_laptop.send_text("bob", hello).await?)
    })
    .await?;
    println!("   laptop -> bob \"{hello}\"  ✓ sent");
    within("waiting for Bob to receive it", async {
        loop {
            if let Event::Message(message) = bob_session.next_event().await?
                && message.text == hello
            {
                return Ok(());
            }
        }
    })
    .await?;
    println!("   bob got       \"{hello}\" (his client learns Alice's new device list)");
    let text = "Dinner at 7? (from Bob)";
    let sent = within("sending", async {
        Ok(bob_session.send_text("alice", text).await?)
    })
    .await?;
    ensure!(sent.status.is_sent(), "not accepted: {:?}", sent.status);
    println!("   bob -> alice  \"{text}\"  ✓ sent (one copy per device of Alice)");
    for (device, session) in [("phone", &mut phone), ("laptop", &mut on_laptop)] {
        let got = within(&format!("waiting for the message on the {device}"), async {
            loop {
                if let Event::Message(message) = session.next_event().await?
                    && message.id == sent.id
                {
                    return Ok(message);
                }
            }
        })
        .await?;
        println!("   {:<13} \"{}\"", format!("{device} got"), got.text);
    }

    on_laptop.mark_read("bob").await?;
    println!("   alice reads it on the laptop");
    within("waiting for the phone to show it read", async {
        while !all_read(alice, bob)? {
            phone.next_event().await?;
        }
        Ok(())
    })
    .await?;
    println!("   phone shows   read (nothing unread from bob)");
    wait_status(&mut bob_session, sent.id, MessageStatus::Read).await?;
    println!("   bob sees      ✓✓ read");
    Ok(())
}
