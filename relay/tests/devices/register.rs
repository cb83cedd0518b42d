//! Registering a device of an account: under the list the home relay holds, or with a newer
//! list sent along by a device that holds the account key.

use tidings_protocol::{ErrorCode, client::Response};

use crate::{
    common::{RawDevice, start_tweaked},
    support::{
        another_device, closed_with, device_list, key, list, publish, register_with, registered,
        signed_list, user_of,
    },
};

#[tokio::test]
async fn a_second_device_registers_only_once_the_held_list_names_it() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    // The first device of an account with no list registers as it always did.
    let mut phone = RawDevice::registered(&address).await;
    let mut laptop = another_device(&address, &phone).await;

    let refused = register_with(&mut laptop, None).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::DeviceRevoked);
    assert!(refused.detail.contains("tidings device add"), "{refused}");

    let both = list(&phone.account, 1, &[&phone.device, &laptop.device]);
    publish(&mut phone, both).await.unwrap();
    let answer = register_with(&mut laptop, None).await;
    assert!(
        matches!(answer, Ok(Response::Registered { new: true, .. })),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_device_with_the_account_key_registers_with_a_newer_list_within_the_cap() {
    let relay = start_tweaked(|config| config.limits.max_devices_per_account = 2, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let account = key();
    let mut phone = RawDevice::connect_as(&address, account.clone(), key()).await;
    let first = list(&account, 1, &[&phone.device]);
    let answer = register_with(&mut phone, Some(first.clone())).await;
    assert!(
        matches!(answer, Ok(Response::Registered { new: true, .. })),
        "{answer:?}"
    );
    // The same list again (a retried registration) is fine.
    assert!(register_with(&mut phone, Some(first)).await.is_ok());

    let mut laptop = another_device(&address, &phone).await;
    let second = list(&account, 2, &[&phone.device, &laptop.device]);
    assert!(
        register_with(&mut laptop, Some(second.clone()))
            .await
            .is_ok()
    );
    assert_eq!(
        device_list(&mut phone, user_of(&account)).await.0,
        Some(second)
    );

    let mut tablet = another_device(&address, &phone).await;
    let refusal = |answer: Result<Response, tidings_protocol::ErrorAnswer>| {
        answer.expect_err("registration must be refused").code
    };
    // Not newer than the held list.
    let stale = list(&account, 2, &[&phone.device, &tablet.device]);
    assert_eq!(
        refusal(register_with(&mut tablet, Some(stale)).await),
        ErrorCode::StaleDeviceList
    );
    // Over the relay's cap.
    let three = list(
        &account,
        3,
        &[&phone.device, &laptop.device, &tablet.device],
    );
    assert_eq!(
        refusal(register_with(&mut tablet, Some(three)).await),
        ErrorCode::DeviceLimit
    );
    // Signed by another key than the account's, or the list of another account.
    let forged = signed_list(&account, 3, &[&phone.device, &tablet.device], &key());
    assert_eq!(
        refusal(register_with(&mut tablet, Some(forged)).await),
        ErrorCode::BadSignature
    );
    let stranger = key();
    let foreign = list(&stranger, 3, &[&tablet.device]);
    assert_eq!(
        refusal(register_with(&mut tablet, Some(foreign)).await),
        ErrorCode::SenderMismatch
    );
    // Not naming the registering device.
    let selfless = list(&account, 3, &[&phone.device, &laptop.device]);
    assert_eq!(
        refusal(register_with(&mut tablet, Some(selfless)).await),
        ErrorCode::Malformed
    );
    // A newer list in place of the laptop: the tablet is in, the laptop revoked at once.
    let swapped = list(&account, 3, &[&phone.device, &tablet.device]);
    assert!(register_with(&mut tablet, Some(swapped)).await.is_ok());
    let fatal = closed_with(&mut laptop)
        .await
        .expect("the laptop is told why");
    assert_eq!(fatal.code, ErrorCode::DeviceRevoked);
    registered(&mut phone).await;
}
