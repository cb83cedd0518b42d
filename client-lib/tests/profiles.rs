//! Profiles end to end through real relays: contacts see them and their updates, strangers
//! and removed contacts cannot read them, names show as "local (Profile)", and a contact on
//! another relay fetches them over federation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Net, TestUser, cli::ok, two_friends};
use tidings_client::{ClientError, Event, profile::ProfileOpError, profile::ProfileUpdate};
use tidings_keys::ProfileError;

const WINDOW: Duration = Duration::from_secs(5);

fn named(name: &str) -> ProfileUpdate {
    ProfileUpdate {
        name: Some(name.into()),
        ..ProfileUpdate::default()
    }
}

/// Syncs `user` and says whether a profile notice from `from` came.
async fn profile_notice(user: &TestUser, from: &TestUser) -> bool {
    let alice = from.client.user_id();
    user.sync(WINDOW)
        .await
        .iter()
        .any(|event| matches!(event, Event::ProfileChanged { user, .. } if *user == alice))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_see_the_profile_and_its_updates_strangers_see_nothing() {
    let (_dir, relay, alice, bob) = two_friends().await;
    let carol = TestUser::register(&relay).await;
    // Carol knows Alice's id, but is not Alice's contact.
    let alice_id = alice.client.user_id().to_string();

    let set = alice
        .client
        .set_profile(ProfileUpdate {
            name: Some("Alice Liddell".into()),
            about: Some("down the rabbit hole".into()),
            picture: None,
        })
        .await
        .unwrap();
    assert_eq!(set.version, 1);

    assert!(profile_notice(&bob, &alice).await);
    let seen = bob.client.profile("alice").await.unwrap().unwrap();
    assert_eq!(seen.name, "Alice Liddell");
    assert_eq!(seen.about, "down the rabbit hole");
    assert_eq!(
        bob.client.display_name(&alice.client.user_id()),
        "alice (Alice Liddell)"
    );

    // A stranger gets no key, so nothing to open: not even a notice.
    assert!(!profile_notice(&carol, &alice).await);
    assert_eq!(carol.client.profile(&alice_id).await.unwrap(), None);
    let carol_session = carol.connect().await;
    assert_eq!(
        carol_session
            .fetch_profile(alice.client.user_id())
            .await
            .unwrap(),
        None
    );
    carol_session.close().await;
    assert!(
        carol
            .client
            .display_name(&alice.client.user_id())
            .ends_with('…')
    );

    // An update (from the command line this time) reaches the contact.
    let out = ok(
        alice.dir.path(),
        &["profile", "set", "--about", "back again"],
    );
    assert!(out.contains("version 2"), "{out}");
    assert!(profile_notice(&bob, &alice).await);
    let shown = ok(bob.dir.path(), &["profile", "show", "alice"]);
    assert!(shown.contains("about:   back again"), "{shown}");
    assert!(shown.contains("name:    Alice Liddell"), "{shown}");

    // History, listen and chat name the contact with both names.
    let mut alice_session = alice.connect().await;
    alice_session.send_text("bob", "hello").await.unwrap();
    alice_session.close().await;
    bob.sync(WINDOW).await;
    let history = ok(bob.dir.path(), &["history", "alice", "--offline"]);
    assert!(
        history.contains("alice (Alice Liddell): hello"),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_contact_cannot_read_a_later_profile() {
    let (_dir, relay, alice, bob) = two_friends().await;
    let dave = TestUser::register(&relay).await;
    alice.befriend("dave", &dave);
    dave.befriend("alice", &alice);
    alice.client.set_profile(named("Alice")).await.unwrap();
    assert!(profile_notice(&bob, &alice).await);
    assert!(profile_notice(&dave, &alice).await);
    assert_eq!(
        bob.client.profile("alice").await.unwrap().unwrap().name,
        "Alice"
    );

    alice.client.remove_contact("bob").unwrap();
    let later = alice
        .client
        .set_profile(named("Alice (new number)"))
        .await
        .unwrap();
    // The removal rotated the key: a version for the re-sealed profile, one for the change.
    assert_eq!(later.version, 3);

    assert!(profile_notice(&dave, &alice).await);
    assert_eq!(
        dave.client.profile("alice").await.unwrap().unwrap().name,
        "Alice (new number)"
    );

    // Bob gets no new key; what the relay now holds does not open with his.
    assert!(!profile_notice(&bob, &alice).await);
    let session = bob.connect().await;
    let fetched = session.fetch_profile(alice.client.user_id()).await;
    session.close().await;
    assert!(
        matches!(
            fetched,
            Err(ClientError::Profile(ProfileOpError::Crypto(
                ProfileError::WrongKey
            )))
        ),
        "{fetched:?}"
    );
    assert_eq!(
        bob.client.profile("alice").await.unwrap().unwrap().name,
        "Alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_on_another_relay_fetches_the_profile_and_its_picture_over_federation() {
    let net = Net::start(2).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    let picture_dir = tempfile::tempdir().unwrap();
    let picture = picture_dir.path().join("me.png");
    std::fs::write(&picture, vec![0x5a; 3000]).unwrap();

    let set = alice
        .client
        .set_profile(ProfileUpdate {
            name: Some("Alice".into()),
            about: None,
            picture: Some(picture.clone()),
        })
        .await
        .unwrap();
    assert!(set.picture.is_some());

    assert!(profile_notice(&bob, &alice).await);
    let seen = bob.client.profile("alice").await.unwrap().unwrap();
    assert_eq!(seen, set);
    let media = seen.picture.unwrap();
    assert_eq!(media.name, "me.png");
    assert_eq!(media.size, 3000);
    // Bob's relay fetches the picture from Alice's; what he saves is what she set.
    let saved = bob
        .client
        .save_profile_picture(Some("alice"), picture_dir.path(), |_| {})
        .await
        .unwrap()
        .unwrap();
    assert_ne!(saved, picture);
    assert_eq!(std::fs::read(&saved).unwrap(), vec![0x5a; 3000]);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_fields_and_other_files_are_refused_before_anything_is_sent() {
    let (_dir, _relay, alice, _bob) = two_friends().await;
    let long = alice.client.set_profile(named(&"n".repeat(65))).await;
    assert!(matches!(
        long,
        Err(ClientError::Profile(ProfileOpError::NameTooLong))
    ));
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a picture").unwrap();
    let not_image = alice
        .client
        .set_profile(ProfileUpdate {
            picture: Some(text),
            ..ProfileUpdate::default()
        })
        .await;
    assert!(matches!(
        not_image,
        Err(ClientError::Profile(ProfileOpError::NotAnImage))
    ));
    assert_eq!(alice.client.own_profile().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_follows_its_user_to_a_new_home_relay() {
    let net = Net::start(3).await;
    let alice = TestUser::register(net.relay(0)).await;
    let bob = TestUser::register(net.relay(1)).await;
    alice.befriend("bob", &bob);
    bob.befriend("alice", &alice);
    alice.client.set_profile(named("Alice")).await.unwrap();
    alice
        .client
        .move_home(net.relay(2).tcp_dial_addr().unwrap(), None)
        .await
        .unwrap();
    // Bob takes the key only now: the profile it opens must be at Alice's new home (his
    // relay may ask her old one first, which answers that it holds none for her).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        bob.sync(Duration::from_millis(500)).await;
        let held = bob.client.profile("alice").await;
        if let Ok(Some(profile)) = &held {
            assert_eq!(profile.name, "Alice");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new home serves no profile: {held:?}"
        );
    }
    net.shutdown().await;
}
