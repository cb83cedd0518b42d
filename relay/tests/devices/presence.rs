//! Presence and typing across devices: a user is online while any device is subscribed and
//! last seen when the last one leaves; typing reaches every live device; the account's own
//! device list says which device is online and when each was last seen.

use tidings_protocol::{
    Address, BoundedVec, RawEnvelope,
    client::{RelayFrame, Request, Response},
    presence::{PresenceState, TypingBody, Visibility},
};

use crate::{
    common::{RawDevice, start_tweaked},
    support::{another_device, device_list, list, publish, reconnect, registered, wait_for},
};

/// A signed typing notice from `from` to `to`.
fn typing(from: &RawDevice, to: Address) -> RawEnvelope {
    let mut notice = from.envelope_to(to, &TypingBody { typing: true }.encode());
    notice.kind = tidings_protocol::Kind::Typing;
    notice.sent_at_ms = tidings_protocol::now_ms();
    notice.sign(&from.device)
}

/// The next presence state `watcher` hears.
async fn next_state(watcher: &mut RawDevice) -> PresenceState {
    wait_for(watcher, |frame| match frame {
        RelayFrame::Presence(report) => Some(report.state),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn online_while_any_device_is_subscribed_and_typing_reaches_each() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let mut phone = RawDevice::registered(&address).await;
    let mut laptop = another_device(&address, &phone).await;
    let both = list(&phone.account, 1, &[&phone.device, &laptop.device]);
    publish(&mut phone, both).await.unwrap();
    registered(&mut laptop).await;
    let everyone = Request::SetPresence {
        visibility: Visibility::Everyone,
        allowed: BoundedVec::new(Vec::new()).unwrap(),
    };
    assert!(phone.request(everyone).await.is_ok());
    let alice = phone.address().user;

    let mut carol = RawDevice::registered(&address).await;
    let watched = carol
        .request(Request::WatchPresence {
            users: BoundedVec::new(vec![alice]).unwrap(),
        })
        .await;
    assert!(
        matches!(watched, Ok(Response::Presence { .. })),
        "{watched:?}"
    );

    // Both devices come online: Carol hears "online" once.
    let mut phone_live = reconnect(&address, &phone).await;
    phone_live.drain().await;
    assert_eq!(next_state(&mut carol).await, PresenceState::Online);
    let mut laptop_live = reconnect(&address, &laptop).await;
    laptop_live.drain().await;

    // Carol types to Alice's phone... and to her laptop: each live device gets its notice.
    let to_phone = carol
        .request(Request::Ephemeral {
            envelope: typing(&carol, phone.address()),
        })
        .await;
    assert_eq!(to_phone, Ok(Response::EphemeralPassed { reached: 2 }));
    for device in [&mut phone_live, &mut laptop_live] {
        wait_for(device, |frame| match frame {
            RelayFrame::Ephemeral(_) => Some(()),
            _ => None,
        })
        .await;
    }

    // Alice's own list says which of her devices is online.
    let (_, seen) = device_list(&mut phone, alice).await;
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|device| device.online), "{seen:?}");
    // Someone else's view of her list tells nothing of her devices.
    let (held, seen) = device_list(&mut carol, alice).await;
    assert!(held.is_some());
    assert!(seen.is_empty());

    // The phone leaves: Alice is still online (Carol hears nothing), the phone last seen.
    drop(phone_live);
    let phone_id = phone.address().device;
    let seen_phone = loop {
        let (_, seen) = device_list(&mut laptop, alice).await;
        let entry = seen
            .into_iter()
            .find(|device| device.device == phone_id)
            .unwrap();
        if entry.last_seen_ms.is_some() {
            break entry;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(!seen_phone.online);
    let still = carol
        .request(Request::WatchPresence {
            users: BoundedVec::new(vec![alice]).unwrap(),
        })
        .await;
    let Ok(Response::Presence { reports }) = still else {
        panic!("{still:?}");
    };
    assert_eq!(reports[0].state, PresenceState::Online);
    // The laptop leaves too: now Carol hears Alice went offline.
    drop(laptop_live);
    assert!(matches!(
        next_state(&mut carol).await,
        PresenceState::Offline {
            last_seen_ms: Some(_)
        }
    ));
}
