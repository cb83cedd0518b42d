//! Held-back envelopes: a message from a device its account's held list does not name, while
//! that list cannot be fetched (the account's home relay away), is kept, not failed; once a
//! list is fetched it is delivered if the device is on it and failed if not; past the bounds
//! the excess is failed with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Net, TestUser, events_for, texts, wait_for};
use tidings_client::{
    Event, MessageStatus, Session,
    store::{Conversation, HELD_PER_USER},
};
use tidings_keys::Identity;
use tidings_protocol::{DeviceEntry, DeviceList, RawEnvelope, UserId, now_ms};

/// Longer than the 10 s after which a list that could not be fetched is asked for again,
/// plus the home relay's own retries of the lookup.
const RETRY_WAIT: Duration = Duration::from_secs(60);

/// Waits for events until `done` says stop, failing after `within`.
async fn wait_long(
    session: &mut Session,
    within: Duration,
    mut done: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, session.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting; events so far: {seen:#?}"))
            .unwrap();
        let stop = done(&event);
        seen.push(event);
        if stop {
            return seen;
        }
    }
}

/// Alice (on relay 0) holds Bob's list naming his phone only; Bob (on relay 1) links a
/// laptop, which writes to Alice; the envelope reaches Alice's relay, then Bob's relay
/// stops. Alice's session takes it in while her relay cannot fetch Bob's new list.
///
/// Why built this way: Bob's relay must be up for the laptop to send (and for its envelope to
/// be forwarded) and away only for Alice's lookup. Waiting until Bob's relay has no envelope
/// left in its outbox (Alice's relay acks a forward only after its commit) and then stopping
/// it, before Alice subscribes, is the smallest honest way to get exactly that.
struct Scene {
    net: Net,
    alice: TestUser,
    bob: TestUser,
    laptop: TestUser,
    alice_session: Session,
    /// The laptop's message.
    sent: tidings_client::MessageRecord,
}

async fn laptop_writes_while_bobs_relay_goes_away() -> Scene {
    let mut net = Net::start(2).await;
    net.wait_for_dht(1).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);

    // Alice writes to Bob first, so she holds his list (version 1: the phone).
    let mut alice_session = alice.connect().await;
    let hello = alice_session.send_text("bob", "hi Bob").await.unwrap();
    assert_eq!(hello.status, MessageStatus::Sent);
    let bob_user = bob.client.user_id();
    let held_list = alice
        .client
        .store()
        .device_list(&bob_user)
        .unwrap()
        .unwrap();
    assert_eq!(held_list.list.devices.len(), 1);

    // Bob's laptop joins his account (list version 2) and writes to Alice; nobody tells her.
    let laptop = bob.another_device(net.relay(1)).await;
    laptop.befriend("alice", &alice);
    let mut laptop_session = laptop.connect().await;
    let sent = laptop_session
        .send_text("alice", "from my new laptop")
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    laptop_session.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while net.relay(1).metrics().outbox_entries() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Bob's relay never forwarded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.stop(1).await;

    // Alice takes it in: her relay cannot fetch Bob's list, so it is held back, not failed.
    alice_session.subscribe().await.unwrap();
    let events = wait_for(&mut alice_session, |event| *event == Event::CaughtUp).await;
    assert!(texts(&events).is_empty(), "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::Undecryptable { .. })),
        "{events:#?}"
    );
    assert_eq!(
        alice.client.store().held_back().unwrap(),
        [(bob_user, 1)],
        "held back, waiting for Bob's list"
    );
    let history = alice
        .client
        .store()
        .history(&Conversation::Direct(bob_user))
        .unwrap();
    assert!(
        history
            .iter()
            .all(|message| message.id != sent.id
                && !matches!(message.status, MessageStatus::Failed(_))),
        "nothing recorded yet: {history:#?}"
    );
    Scene {
        net,
        alice,
        bob,
        laptop,
        alice_session,
        sent,
    }
}

/// Once Bob's relay is back, Alice's session asks for his list again on the retry schedule
/// (nothing else tells her), and the laptop's message arrives, once, with its ✓✓.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_from_a_device_linked_while_its_relay_is_away_arrives_once_it_is_back() {
    let Scene {
        mut net,
        alice,
        bob,
        laptop,
        mut alice_session,
        sent,
    } = laptop_writes_while_bobs_relay_goes_away().await;
    let bob_user = bob.client.user_id();

    net.restart(1).await;
    let events = wait_long(&mut alice_session, RETRY_WAIT, |event| {
        matches!(event, Event::Message(_))
    })
    .await;
    assert_eq!(texts(&events), ["from my new laptop"]);
    let Some(Event::Message(message)) = events.last() else {
        panic!("{events:#?}");
    };
    assert_eq!(message.id, sent.id);
    assert_eq!(message.peer, bob_user);
    assert!(alice.client.store().held_back().unwrap().is_empty());

    // Once: nothing comes again, and the history holds it once.
    let later = events_for(&mut alice_session, Duration::from_secs(3)).await;
    assert!(texts(&later).is_empty(), "{later:#?}");
    let history = alice
        .client
        .store()
        .history(&Conversation::Direct(bob_user))
        .unwrap();
    let copies: Vec<_> = history
        .iter()
        .filter(|message| message.id == sent.id)
        .collect();
    assert_eq!(copies.len(), 1, "{history:#?}");
    assert_eq!(copies[0].status, MessageStatus::Received);

    // As for a live message, the laptop gets its ✓✓.
    let laptop_events = laptop.sync(Duration::from_secs(10)).await;
    assert!(
        laptop_events.iter().any(|event| matches!(
            event,
            Event::Status { id, status: MessageStatus::Delivered, .. } if *id == sent.id
        )),
        "{laptop_events:#?}"
    );
    net.shutdown().await;
}

/// Held envelopes outlive the process (they are in the store): Alice's client restarts after
/// Bob's relay is back, and its first session asks for his list and delivers the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_is_delivered_by_the_next_run_once_the_relay_is_back() {
    let Scene {
        mut net,
        alice,
        bob,
        alice_session,
        sent,
        ..
    } = laptop_writes_while_bobs_relay_goes_away().await;
    alice_session.close().await;
    let TestUser { dir, client } = alice;
    drop(client);
    net.restart(1).await;

    let reopened = tidings_client::Client::open(dir.path(), None).unwrap();
    let mut session = reopened.connect().await.unwrap();
    session.subscribe().await.unwrap();
    let events = wait_for(&mut session, |event| matches!(event, Event::Message(_))).await;
    assert_eq!(texts(&events), ["from my new laptop"]);
    let Some(Event::Message(message)) = events.last() else {
        panic!("{events:#?}");
    };
    assert_eq!((message.id, message.peer), (sent.id, bob.client.user_id()));
    assert!(reopened.store().held_back().unwrap().is_empty());
    net.shutdown().await;
}

/// The laptop is removed before Alice can fetch Bob's list: the fresh list does not name it,
/// so its held message is failed (it is not kept for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_from_a_device_the_fresh_list_does_not_name_is_failed() {
    let Scene {
        mut net,
        alice,
        bob,
        laptop,
        mut alice_session,
        sent: _,
    } = laptop_writes_while_bobs_relay_goes_away().await;
    let bob_user = bob.client.user_id();

    net.restart(1).await;
    bob.client
        .remove_device(laptop.client.address().device)
        .await
        .unwrap();
    let events = wait_long(&mut alice_session, RETRY_WAIT, |event| {
        matches!(event, Event::Undecryptable { .. })
    })
    .await;
    assert!(texts(&events).is_empty(), "{events:#?}");
    let Some(Event::Undecryptable { from, id, reason }) = events.last() else {
        panic!("{events:#?}");
    };
    assert_eq!(*from, laptop.client.address());
    assert!(
        reason.contains("not on its account's device list"),
        "{reason}"
    );
    assert!(alice.client.store().held_back().unwrap().is_empty());
    // Recorded as failed, never as a message.
    let history = alice
        .client
        .store()
        .history(&Conversation::Direct(bob_user))
        .unwrap();
    assert!(
        history
            .iter()
            .any(|message| message.id == *id && matches!(message.status, MessageStatus::Failed(_))),
        "{history:#?}"
    );
    net.shutdown().await;
}

use common::store_device::StoreDevice as Device;

impl Device {
    /// Seals `texts` to `to` (one Olm session), in order.
    fn texts_to(&self, to: &Device, texts: &[String]) -> Vec<RawEnvelope> {
        let me = self.identity.user_id();
        let address = to.identity.address();
        self.store
            .install_outbound(&self.identity, &address, &to.bundle(0))
            .unwrap();
        self.store
            .queue_texts(me, Conversation::Direct(address.user), texts.to_vec())
            .unwrap();
        self.store
            .pending(texts.len() + 1)
            .unwrap()
            .into_iter()
            .map(|(seq, _)| {
                self.store
                    .seal(&self.identity, seq, vec![address])
                    .unwrap()
                    .remove(0)
                    .envelope
            })
            .collect()
    }
}

/// `account`'s list naming `devices`, signed by its account key.
fn list_of(
    account: &Identity,
    version: u64,
    devices: &[&Identity],
) -> tidings_protocol::SignedDeviceList {
    let entries = devices
        .iter()
        .map(|device| DeviceEntry {
            device: device.device_id(),
            name: "device".into(),
            added_at_ms: now_ms(),
        })
        .collect();
    let list = DeviceList::new(account.user_id(), version, entries).unwrap();
    account.sign_device_list(list).unwrap()
}

/// More envelopes than [`HELD_PER_USER`] from one unlisted device: the first ones are held,
/// the excess is failed with the reason; once a list naming the device is fetched, the held
/// ones are delivered in the order they came.
#[test]
fn past_the_bound_per_account_the_excess_is_failed_with_the_reason() {
    let phone = Identity::generate();
    let laptop = Device::with(phone.another_device());
    let bob = Device::new();
    let alice_user: UserId = phone.user_id();
    bob.store
        .accept_device_list(&alice_user, list_of(&phone, 1, &[&phone]))
        .unwrap()
        .unwrap();

    let over = 4;
    let sent: Vec<String> = (0..HELD_PER_USER + over)
        .map(|n| format!("message {n}"))
        .collect();
    let envelopes: Vec<_> = laptop
        .texts_to(&bob, &sent)
        .into_iter()
        .map(|raw| (raw.open().unwrap(), raw))
        .collect();
    let received = bob
        .store
        .receive_holding(&bob.identity, &envelopes, &[], &[alice_user])
        .unwrap();
    assert_eq!(received.held_back, [alice_user]);
    let failed: Vec<&String> = received
        .events
        .iter()
        .map(|event| match event {
            Event::Undecryptable { from, reason, .. } => {
                assert_eq!(*from, laptop.identity.address());
                reason
            }
            other => panic!("only the excess fails: {other:?}"),
        })
        .collect();
    assert_eq!(failed.len(), over);
    for reason in failed {
        assert!(
            reason.contains(&format!(
                "not held back: {HELD_PER_USER} envelopes of this account already wait"
            )),
            "{reason}"
        );
    }
    assert_eq!(
        bob.store.held_back().unwrap(),
        [(alice_user, HELD_PER_USER)]
    );

    // Still not listed while the list cannot be fetched: settling keeps them.
    let kept = bob.store.settle_held(&bob.identity, &[]).unwrap();
    assert!(kept.events.is_empty());
    assert_eq!(kept.held_back, [alice_user]);

    // Alice's list naming the laptop is fetched: the held ones arrive in order, once.
    bob.store
        .accept_device_list(&alice_user, list_of(&phone, 2, &[&phone, &laptop.identity]))
        .unwrap()
        .unwrap();
    let settled = bob.store.settle_held(&bob.identity, &[alice_user]).unwrap();
    assert_eq!(texts(&settled.events), sent[..HELD_PER_USER]);
    assert!(settled.held_back.is_empty());
    assert!(bob.store.held_back().unwrap().is_empty());
    let again = bob.store.settle_held(&bob.identity, &[alice_user]).unwrap();
    assert!(again.events.is_empty());
}

/// Without an account to wait for (`receive`), an unlisted device's envelope fails as before,
/// and a fresh list that still does not name the device fails the held ones.
#[test]
fn a_held_envelope_still_unlisted_after_a_fresh_list_is_failed() {
    let phone = Identity::generate();
    let stranger = Device::with(phone.another_device());
    let bob = Device::new();
    let alice_user = phone.user_id();
    bob.store
        .accept_device_list(&alice_user, list_of(&phone, 1, &[&phone]))
        .unwrap()
        .unwrap();
    let envelopes: Vec<_> = stranger
        .texts_to(&bob, &["first".into(), "second".into()])
        .into_iter()
        .map(|raw| (raw.open().unwrap(), raw))
        .collect();

    let now = bob
        .store
        .receive(&bob.identity, &envelopes[..1], &[])
        .unwrap();
    assert!(
        matches!(&now.events[..], [Event::Undecryptable { reason, .. }] if reason.contains("not on its account's device list")),
        "{:?}",
        now.events
    );

    let held = bob
        .store
        .receive_holding(&bob.identity, &envelopes[1..], &[], &[alice_user])
        .unwrap();
    assert!(held.events.is_empty(), "{:?}", held.events);
    // A fresh list (version 2) that still names only the phone.
    bob.store
        .accept_device_list(&alice_user, list_of(&phone, 2, &[&phone]))
        .unwrap()
        .unwrap();
    let settled = bob.store.settle_held(&bob.identity, &[alice_user]).unwrap();
    assert!(
        matches!(&settled.events[..], [Event::Undecryptable { id, .. }] if *id == envelopes[1].0.id),
        "{:?}",
        settled.events
    );
    assert!(bob.store.held_back().unwrap().is_empty());
    let history = bob
        .store
        .history(&Conversation::Direct(alice_user))
        .unwrap();
    assert_eq!(history.len(), 2);
    assert!(
        history
            .iter()
            .all(|message| matches!(message.status, MessageStatus::Failed(_)))
    );
}
