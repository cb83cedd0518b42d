//! The account side of the page: linking this browser as a device of an existing account,
//! groups made and grown from the page, and a device whose registration did not finish.
//!
//! A device is either registered or gone: a new account whose registration fails is removed
//! (the person starts again); one left unregistered by a closed tab registers on its next
//! unlock; a linked device that never finished linking is removed on its next unlock.

use std::{cell::Cell, time::Duration};

use libp2p::Multiaddr;
use tidings_client::{ClientError, DeviceLink, LINK_WAIT, browser, runtime};
use tidings_protocol::limits::{MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN};
use wasm_bindgen::prelude::*;

use crate::{
    device::{DEVICE_DIR, Device, js_error},
    unregistered::removed,
};

/// Starting a link (a relay handshake with the new device key) may take this long.
const LINK_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A device that unlocks unregistered registers again within this long.
const REREGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest member list (JSON text) the page may hand over for one group change.
const MAX_MEMBERS_JSON: usize = MAX_GROUP_MEMBERS * 300;

/// A link started from this page: the new device's key waiting at the relay, and the code
/// the person types on the device that holds the account key (`tidings device add CODE`).
#[wasm_bindgen]
pub struct PendingLink {
    link: DeviceLink,
}

#[wasm_bindgen]
impl PendingLink {
    /// The link code to show (`tidings-link:...`).
    pub fn code(&self) -> String {
        self.link.code().to_string()
    }

    /// Waits (up to ten minutes) for the approval, saves the linked device's key file sealed
    /// under `passphrase` and registers it at the account's home relay. Any failure after the
    /// key file was saved removes the device again.
    pub async fn finish(self, passphrase: String) -> Result<Device, JsError> {
        let saved = Cell::new(false);
        let finished = self
            .link
            .finish_with(LINK_WAIT, |identity| {
                let (passphrase, saved) = (&passphrase, &saved);
                async move {
                    let client = browser::save_device(DEVICE_DIR, identity, Some(passphrase))
                        .await
                        .map_err(ClientError::from)?;
                    saved.set(true);
                    Ok(client)
                }
            })
            .await;
        match finished {
            Ok((client, _package)) => Ok(Device::opened(client)),
            Err(error) if saved.get() => {
                Err(removed(DEVICE_DIR, &format!("linking did not finish ({error})")).await)
            }
            Err(error) => Err(js_error(format!("linking did not finish ({error})"))),
        }
    }
}

/// The members the page names, as JSON text `["name", ...]`, bounded.
fn member_names(json: &str) -> Result<Vec<String>, JsError> {
    if json.len() > MAX_MEMBERS_JSON {
        return Err(JsError::new("too many members at once"));
    }
    let names: Vec<String> = serde_json::from_str(json)
        .map_err(|error| JsError::new(&format!("not a list of names: {error}")))?;
    if names.len() > MAX_GROUP_MEMBERS {
        return Err(JsError::new("too many members at once"));
    }
    Ok(names)
}

#[wasm_bindgen]
impl Device {
    /// Starts linking this browser as another device of an existing account whose home relay
    /// is at `relay`: the page shows [`PendingLink::code`], then waits in
    /// [`PendingLink::finish`]. Refused if this browser already holds a device.
    #[wasm_bindgen(js_name = startLink)]
    pub async fn start_link(relay: String) -> Result<PendingLink, JsError> {
        if browser::device_exists(DEVICE_DIR).await.map_err(js_error)? {
            return Err(JsError::new("this browser already holds a device"));
        }
        let address: Multiaddr = relay
            .trim()
            .parse()
            .map_err(|error| JsError::new(&format!("not a relay address: {error}")))?;
        let link = runtime::timeout(LINK_START_TIMEOUT, DeviceLink::start(address))
            .await
            .map_err(|_| JsError::new("the relay did not answer in time"))?
            .map_err(js_error)?;
        Ok(PendingLink { link })
    }

    /// Opens this origin's device with its passphrase, finishing what a closed tab left
    /// undone: an account never registered registers at `relay` now (an error leaves it to
    /// the next unlock); a linked device that never registered is removed (link again).
    #[wasm_bindgen(js_name = unlockRegistered)]
    pub async fn unlock_registered(passphrase: String, relay: String) -> Result<Device, JsError> {
        let client = browser::open_device(DEVICE_DIR, Some(&passphrase))
            .await
            .map_err(js_error)?;
        if client.relay_addr().map_err(js_error)?.is_none() {
            if !client.holds_account_key() {
                drop(client);
                return Err(removed(DEVICE_DIR, "this browser's linking had not finished").await);
            }
            let address: Multiaddr = relay.parse().map_err(js_error)?;
            runtime::timeout(REREGISTER_TIMEOUT, client.register(address, None))
                .await
                .map_err(|_| {
                    JsError::new("not registered yet: the relay did not answer in time; unlock again to retry")
                })?
                .map_err(|error| {
                    js_error(format!("not registered yet ({error}); unlock again to retry"))
                })?;
        }
        Ok(Device::opened(client))
    }

    /// Creates the group `name` with the contacts named in `members` (JSON `["name"]`),
    /// this account its admin; returns the chats as [`Device::chats`] does.
    #[wasm_bindgen(js_name = createGroup)]
    pub async fn create_group(&self, name: String, members: String) -> Result<String, JsError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_GROUP_NAME_LEN {
            return Err(JsError::new(&format!(
                "a group name has 1 to {MAX_GROUP_NAME_LEN} bytes"
            )));
        }
        let members = member_names(&members)?;
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        let mut session = self.client.connect().await.map_err(js_error)?;
        let created = session.create_group(name, &members).await;
        session.close().await;
        created.map_err(js_error)?;
        self.chats()
    }

    /// Adds the contacts named in `members` (JSON `["name"]`) to the group `group` (its name
    /// or id; admins only); returns the chats.
    #[wasm_bindgen(js_name = addToGroup)]
    pub async fn add_to_group(&self, group: String, members: String) -> Result<String, JsError> {
        let group = self.client.group_id(&group).map_err(js_error)?;
        let members = member_names(&members)?;
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        let mut session = self.client.connect().await.map_err(js_error)?;
        let added = session.add_to_group(group, &members).await;
        session.close().await;
        added.map_err(js_error)?;
        self.chats()
    }
}
