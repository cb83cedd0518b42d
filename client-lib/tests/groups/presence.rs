//! Presence, privacy and typing over real relays: online while a device is connected,
//! last seen when it leaves (kept across restarts), watches across relays, a denied watcher
//! who learns nothing, a silent device dropped by the heartbeat timeout, and typing notices
//! that reach live devices and are never stored.

use std::time::Duration;

use crate::common::{self, Net, TestUser, wait_for};
use tidings_client::{
    Event,
    connection::{Connection, Push},
    net::Network,
};
use tidings_protocol::{
    Kind, UserId,
    client::{Request, Response},
    presence::{PresenceState, Visibility},
};

fn is_presence(event: &Event, who: UserId, want: fn(&PresenceState) -> bool) -> bool {
    matches!(event, Event::Presence { user, state } if *user == who && want(state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_while_connected_and_last_seen_survives_a_relay_restart() {
    let mut net = Net::start(1).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(0)).await;
    alice.befriend("bob", &bob);
    let bob_id = bob.client.user_id();

    let mut alice_session = alice.online().await;
    let reports = alice_session.watch_presence(&["bob"]).await.unwrap();
    assert_eq!(
        reports[0].state,
        PresenceState::Offline { last_seen_ms: None }
    );

    let bob_session = bob.online().await;
    wait_for(&mut alice_session, |e| {
        is_presence(e, bob_id, |s| *s == PresenceState::Online)
    })
    .await;
    bob_session.close().await;
    let events = wait_for(&mut alice_session, |e| {
        is_presence(e, bob_id, |s| matches!(s, PresenceState::Offline { .. }))
    })
    .await;
    let Some(Event::Presence {
        state: PresenceState::Offline {
            last_seen_ms: Some(last_seen),
        },
        ..
    }) = events.last()
    else {
        panic!("no last seen: {events:?}");
    };

    drop(alice_session);
    net.stop(0).await;
    net.restart(0).await;
    let alice_session = alice.online().await;
    let reports = alice_session.watch_presence(&["bob"]).await.unwrap();
    assert_eq!(
        reports[0].state,
        PresenceState::Offline {
            last_seen_ms: Some(*last_seen)
        },
        "last seen is kept across a restart"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_relays_and_a_denied_watcher_elsewhere_learns_nothing() {
    let mut net = Net::start_with(2, |config| config.presence.watch_ttl_secs = 3).await;
    let alice = TestUser::register(net.relay(0)).await;
    let carol = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    alice.befriend("bob", &bob);
    carol.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let bob_id = bob.client.user_id();

    // Bob shares presence with his contacts only: Alice, not Carol.
    let bob_session = bob.online().await;
    assert_eq!(
        bob_session
            .set_presence(Visibility::Contacts)
            .await
            .unwrap(),
        1
    );

    let mut alice_session = alice.online().await;
    let mut carol_session = carol.online().await;
    let seen = alice_session.watch_presence(&["bob"]).await.unwrap();
    assert_eq!(seen[0].state, PresenceState::Online);
    let denied = carol_session.watch_presence(&["bob"]).await.unwrap();
    assert_eq!(
        denied[0].state,
        PresenceState::Hidden,
        "Carol learns nothing"
    );

    // Bob leaves: Alice (on another relay) is told, with his last seen.
    bob_session.close().await;
    wait_for(&mut alice_session, |e| {
        is_presence(e, bob_id, |s| {
            matches!(
                s,
                PresenceState::Offline {
                    last_seen_ms: Some(_)
                }
            )
        })
    })
    .await;

    // Bob's relay restarts and forgets the watch; Alice's relay renews it, so Bob coming
    // back is seen again.
    net.stop(1).await;
    net.restart(1).await;
    let _bob_again = bob.online().await;
    wait_for(&mut alice_session, |e| {
        is_presence(e, bob_id, |s| *s == PresenceState::Online)
    })
    .await;

    // Carol never heard anything but "hidden" about Bob.
    let carol_events = common::events_for(&mut carol_session, Duration::from_secs(2)).await;
    for event in &carol_events {
        assert!(
            !matches!(event, Event::Presence { state, .. } if *state != PresenceState::Hidden),
            "privacy violation: {event:?}"
        );
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_within_the_heartbeat_timeout() {
    let net = Net::start_with(1, |config| config.presence.heartbeat_timeout_secs = 2).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(0)).await;
    alice.befriend("bob", &bob);
    let bob_id = bob.client.user_id();

    // Bob's device subscribes and then says nothing, without closing (as if its network
    // vanished): no heartbeats.
    let identity =
        tidings_keys::Identity::load(&bob.dir.path().join(tidings_client::KEY_FILE), None).unwrap();
    let keypair =
        libp2p::identity::Keypair::ed25519_from_bytes(identity.device_key().to_bytes()).unwrap();
    let network = Network::start(keypair).unwrap();
    let peer = network.dial(common::dial_addr(net.relay(0))).await.unwrap();
    let mut silent = Connection::open(&network, peer).await.unwrap();
    let Response::Subscribed { heartbeat_ms, .. } =
        silent.request(Request::Subscribe).await.unwrap()
    else {
        panic!("not subscribed");
    };
    assert!(heartbeat_ms > 0 && heartbeat_ms < 2000, "{heartbeat_ms}");

    // Alice's session sends heartbeats, so she stays online past the timeout.
    let mut alice_session = alice.online().await;
    let now = alice_session.watch_presence(&["bob"]).await.unwrap();
    assert_eq!(now[0].state, PresenceState::Online);
    let started = tokio::time::Instant::now();
    wait_for(&mut alice_session, |e| {
        is_presence(e, bob_id, |s| matches!(s, PresenceState::Offline { .. }))
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // The relay closed the silent stream.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Push::Closed(_) = silent.next_push().await {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent stream stays open");
    // Alice, who kept sending heartbeats, is still connected and served.
    assert!(alice_session.watch_presence(&["bob"]).await.is_ok());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_a_live_device_across_relays_and_is_never_stored() {
    let net = Net::start(2).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let alice_id = alice.client.user_id();

    let mut alice_session = alice.online().await;
    alice_session.send_text("bob", "hi").await.unwrap();
    let mut bob_session = bob.online().await;
    wait_for(&mut bob_session, |e| matches!(e, Event::Message(_))).await;

    assert_eq!(alice_session.send_typing("bob", true).await.unwrap(), 1);
    wait_for(
        &mut bob_session,
        |e| matches!(e, Event::Typing { from, typing: true, group: None } if *from == alice_id),
    )
    .await;

    // Bob goes offline: the notice reaches nobody and is not kept for later.
    bob_session.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alice_session.send_typing("bob", false).await.unwrap(), 0);
    let events = bob.sync(Duration::from_secs(3)).await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Typing { .. })),
        "a typing notice was stored: {events:?}"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_typing_reaches_the_live_members_on_every_relay_and_is_never_stored() {
    let net = Net::start(2).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    let carol = TestUser::register(net.relay(0)).await;
    let dave = TestUser::register(net.relay(1)).await;
    for (name, other) in [("bob", &bob), ("carol", &carol), ("dave", &dave)] {
        alice.befriend(name, other);
    }
    let alice_id = alice.client.user_id();
    let mut alice_session = alice.online().await;
    let group = alice_session
        .create_group("crew", &["bob", "carol", "dave"])
        .await
        .unwrap();

    // Bob (the other relay) and Carol (Alice's relay) are live; Dave is not.
    let mut live = Vec::new();
    for member in [&bob, &carol] {
        let mut session = member.online().await;
        wait_for(&mut session, |e| matches!(e, Event::GroupChanged { .. })).await;
        live.push(session);
    }
    assert_eq!(alice_session.send_typing("crew", true).await.unwrap(), 2);
    for session in &mut live {
        wait_for(session, |e| {
            matches!(e, Event::Typing { from, group: Some(g), typing: true }
                if *from == alice_id && *g == group)
        })
        .await;
    }

    let events = dave.sync(Duration::from_secs(3)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::GroupChanged { .. })),
        "Dave got the group itself: {events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Typing { .. })),
        "a typing notice was kept for an offline member: {events:?}"
    );
    for relay in 0..2 {
        let metrics = net.relay(relay).metrics();
        assert_eq!(metrics.envelopes_stored(Kind::Typing), 0);
        assert!(
            metrics.envelopes_stored(Kind::GroupControl) > 0,
            "the counter counts"
        );
    }
    net.shutdown().await;
}
