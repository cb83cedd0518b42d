//! A device linked by the link flow starts with what the account already held: the approving
//! device sends it the contacts saved before the link.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{RelayDir, TestUser, dial_addr};
use tidings_client::{DeviceLink, Event};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_device_linked_by_code_gets_the_contacts_saved_before() {
    let relay_dir = RelayDir::new();
    let relay = relay_dir.start().await;
    let alice = TestUser::register(&relay).await;
    let bob = TestUser::register(&relay).await;
    alice.befriend("bob", &bob);

    let dir = tempfile::tempdir().unwrap();
    let new = DeviceLink::start(dial_addr(&relay)).await.unwrap();
    let code = new.code();
    let path = dir.path().to_path_buf();
    let waiting = tokio::spawn(async move { new.finish(&path, None, WAIT).await });
    alice
        .client
        .approve_link(&code, Some("laptop"))
        .await
        .unwrap();
    let (laptop, _) = waiting.await.unwrap().unwrap();
    assert!(laptop.resolve("bob").is_err());

    alice.connect().await.flush().await.unwrap();
    let events = laptop
        .connect()
        .await
        .unwrap()
        .sync(Duration::from_secs(5))
        .await
        .unwrap();
    assert!(events.contains(&Event::ContactsSynced), "{events:?}");
    assert_eq!(laptop.resolve("bob").unwrap(), bob.client.user_id());
    relay.shutdown().await;
}
