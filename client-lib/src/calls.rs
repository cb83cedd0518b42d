//! Typed requests to the home relay: each request kind paired with the answer it expects, so
//! a call site writes `connection.call(ClaimBundle { device }).await?` and gets a `KeyBundle`;
//! whether an answer fits its request is checked here, once.

use tidings_protocol::{
    Address, BoundedVec, GroupId, HomeRecord, KeyBundle, RawEnvelope, SignedDeviceList, UserId,
    client::{DeviceSeen, EnvelopeBatch, Register, Request, Response, SendOutcome, UploadKeys},
    group::SignedDescriptor,
    limits::{MAX_BATCH_ENVELOPES, MAX_CARD_ADDRS, MAX_PRESENCE_ALLOWED, MAX_PRESENCE_WATCH},
    presence::{PresenceReport, Visibility},
};

/// One kind of request and the answer it expects.
pub trait ClientCall {
    /// What a fitting answer gives the caller.
    type Answer;
    /// The request kind, for errors and logs.
    const NAME: &'static str;
    /// The request on the wire.
    fn into_request(self) -> Request;
    /// The typed answer, or the response back if it does not fit this request.
    fn answer(response: Response) -> Result<Self::Answer, Response>;
}

/// What registering answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// False when this device was registered there already.
    pub new: bool,
    /// Addresses the relay announces, for the home record.
    pub relay_addrs: BoundedVec<String, MAX_CARD_ADDRS>,
}

impl ClientCall for Register {
    type Answer = Registered;
    const NAME: &'static str = "register";
    fn into_request(self) -> Request {
        Request::Register(Box::new(self))
    }
    fn answer(response: Response) -> Result<Registered, Response> {
        match response {
            Response::Registered {
                new, relay_addrs, ..
            } => Ok(Registered { new, relay_addrs }),
            other => Err(other),
        }
    }
}

/// Answered with the one-time keys the relay now holds for this device.
impl ClientCall for UploadKeys {
    type Answer = u32;
    const NAME: &'static str = "upload keys";
    fn into_request(self) -> Request {
        Request::UploadKeys(Box::new(self))
    }
    fn answer(response: Response) -> Result<u32, Response> {
        match response {
            Response::KeysUploaded { one_time_keys } => Ok(one_time_keys),
            other => Err(other),
        }
    }
}

/// Publishes a signed home record.
#[derive(Debug, Clone)]
pub struct PublishHome(pub HomeRecord);

impl ClientCall for PublishHome {
    type Answer = ();
    const NAME: &'static str = "publish home";
    fn into_request(self) -> Request {
        Request::PublishHome(Box::new(self.0))
    }
    fn answer(response: Response) -> Result<(), Response> {
        match response {
            Response::HomePublished => Ok(()),
            other => Err(other),
        }
    }
}

/// Claims the key bundle of one device of a user.
#[derive(Debug, Clone, Copy)]
pub struct ClaimBundle {
    /// Whose: the user and which of their devices.
    pub device: Address,
}

impl ClientCall for ClaimBundle {
    type Answer = KeyBundle;
    const NAME: &'static str = "claim bundle";
    fn into_request(self) -> Request {
        Request::ClaimBundle {
            device: self.device,
        }
    }
    fn answer(response: Response) -> Result<KeyBundle, Response> {
        match response {
            Response::Bundle(bundle) => Ok(*bundle),
            other => Err(other),
        }
    }
}

/// Claims the key bundles of several devices: one bundle or refusal each, in order.
#[derive(Debug, Clone)]
pub struct ClaimBundles {
    /// Whose.
    pub devices: BoundedVec<Address, MAX_BATCH_ENVELOPES>,
}

impl ClientCall for ClaimBundles {
    type Answer = Vec<Result<KeyBundle, tidings_protocol::ErrorAnswer>>;
    const NAME: &'static str = "claim bundles";
    fn into_request(self) -> Request {
        Request::ClaimBundles {
            devices: self.devices,
        }
    }
    fn answer(response: Response) -> Result<Self::Answer, Response> {
        match response {
            Response::Bundles { bundles } => Ok(bundles.into_vec()),
            other => Err(other),
        }
    }
}

/// Sends signed envelopes: one outcome each, in order.
#[derive(Debug, Clone)]
pub struct Send {
    /// The envelopes.
    pub envelopes: EnvelopeBatch,
}

impl ClientCall for Send {
    type Answer = Vec<SendOutcome>;
    const NAME: &'static str = "send";
    fn into_request(self) -> Request {
        Request::Send {
            envelopes: self.envelopes,
        }
    }
    fn answer(response: Response) -> Result<Vec<SendOutcome>, Response> {
        match response {
            Response::Sent { outcomes } => Ok(outcomes.into_vec()),
            other => Err(other),
        }
    }
}

/// Starts receiving the mailbox.
#[derive(Debug, Clone, Copy)]
pub struct Subscribe;

/// What subscribing answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// One-time keys the relay holds for this device.
    pub one_time_keys: u32,
    /// Send a heartbeat this often (milliseconds; 0: never).
    pub heartbeat_ms: u64,
}

impl ClientCall for Subscribe {
    type Answer = Subscribed;
    const NAME: &'static str = "subscribe";
    fn into_request(self) -> Request {
        Request::Subscribe
    }
    fn answer(response: Response) -> Result<Subscribed, Response> {
        match response {
            Response::Subscribed {
                one_time_keys,
                heartbeat_ms,
                ..
            } => Ok(Subscribed {
                one_time_keys,
                heartbeat_ms,
            }),
            other => Err(other),
        }
    }
}

/// Chooses who may see this user's presence.
#[derive(Debug, Clone)]
pub struct SetPresence {
    /// Everyone, the allowed list, or nobody.
    pub visibility: Visibility,
    /// Who may see it with `Visibility::Contacts`.
    pub allowed: BoundedVec<UserId, MAX_PRESENCE_ALLOWED>,
}

impl ClientCall for SetPresence {
    type Answer = ();
    const NAME: &'static str = "set presence";
    fn into_request(self) -> Request {
        Request::SetPresence {
            visibility: self.visibility,
            allowed: self.allowed,
        }
    }
    fn answer(response: Response) -> Result<(), Response> {
        match response {
            Response::PresenceSet => Ok(()),
            other => Err(other),
        }
    }
}

/// Watches users' presence: their current state, in order.
#[derive(Debug, Clone)]
pub struct WatchPresence {
    /// Whose.
    pub users: BoundedVec<UserId, MAX_PRESENCE_WATCH>,
}

impl ClientCall for WatchPresence {
    type Answer = Vec<PresenceReport>;
    const NAME: &'static str = "watch presence";
    fn into_request(self) -> Request {
        Request::WatchPresence { users: self.users }
    }
    fn answer(response: Response) -> Result<Vec<PresenceReport>, Response> {
        match response {
            Response::Presence { reports } => Ok(reports.into_vec()),
            other => Err(other),
        }
    }
}

/// Passes a typing notice on: answered with how many live devices (or relays) took it.
#[derive(Debug, Clone)]
pub struct Ephemeral {
    /// The signed notice.
    pub envelope: RawEnvelope,
}

impl ClientCall for Ephemeral {
    type Answer = u32;
    const NAME: &'static str = "ephemeral";
    fn into_request(self) -> Request {
        Request::Ephemeral {
            envelope: self.envelope,
        }
    }
    fn answer(response: Response) -> Result<u32, Response> {
        match response {
            Response::EphemeralPassed { reached } => Ok(reached),
            other => Err(other),
        }
    }
}

/// A group's descriptor versions from `from` on, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct GroupVersions {
    /// The group.
    pub group: GroupId,
    /// The first version wanted.
    pub from: u64,
}

impl ClientCall for GroupVersions {
    type Answer = Vec<SignedDescriptor>;
    const NAME: &'static str = "group versions";
    fn into_request(self) -> Request {
        Request::GroupVersions {
            group: self.group,
            from: self.from,
        }
    }
    fn answer(response: Response) -> Result<Vec<SignedDescriptor>, Response> {
        match response {
            Response::GroupVersions { versions } => Ok(versions.into_vec()),
            other => Err(other),
        }
    }
}

/// Publishes this account's signed device list at the home relay; answered with the list the
/// relay holds afterwards.
#[derive(Debug, Clone)]
pub struct PublishDeviceList(pub SignedDeviceList);

impl ClientCall for PublishDeviceList {
    type Answer = Option<SignedDeviceList>;
    const NAME: &'static str = "publish device list";
    fn into_request(self) -> Request {
        Request::PublishDeviceList {
            list: Box::new(self.0),
        }
    }
    fn answer(response: Response) -> Result<Option<SignedDeviceList>, Response> {
        match response {
            Response::DeviceList { list, .. } => Ok(list.map(|list| *list)),
            other => Err(other),
        }
    }
}

/// What the home relay answered for a device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDeviceList {
    /// The list the user's home relay holds (`None`: none). Verify it before use.
    pub list: Option<SignedDeviceList>,
    /// For our own list: whether each device is online and when it was last seen.
    pub seen: Vec<DeviceSeen>,
}

/// The device list a user published at their home relay (asked of it by ours). Verify it
/// against the user before use.
#[derive(Debug, Clone, Copy)]
pub struct GetDeviceList {
    /// Whose.
    pub user: UserId,
}

impl ClientCall for GetDeviceList {
    type Answer = HeldDeviceList;
    const NAME: &'static str = "get device list";
    fn into_request(self) -> Request {
        Request::GetDeviceList { user: self.user }
    }
    fn answer(response: Response) -> Result<HeldDeviceList, Response> {
        match response {
            Response::DeviceList { list, seen } => Ok(HeldDeviceList {
                list: list.map(|list| *list),
                seen: seen.into_vec(),
            }),
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_of_another_kind_comes_back_unchanged() {
        assert_eq!(
            Ephemeral::answer(Response::EphemeralPassed { reached: 2 }),
            Ok(2)
        );
        assert_eq!(
            Ephemeral::answer(Response::PresenceSet),
            Err(Response::PresenceSet)
        );
        assert!(matches!(Subscribe.into_request(), Request::Subscribe));
    }
}

/// Leaves a link package, sealed with the link code's secret, for a device being linked to
/// this account (the account's list must name it).
#[derive(Debug, Clone)]
pub struct PutLink {
    /// The device being linked.
    pub device: tidings_protocol::DeviceId,
    /// The sealed package.
    pub package: Vec<u8>,
}

impl ClientCall for PutLink {
    type Answer = ();
    const NAME: &'static str = "put link";
    fn into_request(self) -> Request {
        Request::PutLink {
            device: self.device,
            package: self.package,
        }
    }
    fn answer(response: Response) -> Result<(), Response> {
        match response {
            Response::LinkStored => Ok(()),
            other => Err(other),
        }
    }
}

/// Takes the link package left for this (not yet registered) device, if one waits.
#[derive(Debug, Clone, Copy)]
pub struct TakeLink;

impl ClientCall for TakeLink {
    type Answer = Option<Vec<u8>>;
    const NAME: &'static str = "take link";
    fn into_request(self) -> Request {
        Request::TakeLink
    }
    fn answer(response: Response) -> Result<Option<Vec<u8>>, Response> {
        match response {
            Response::Link { package } => Ok(package),
            other => Err(other),
        }
    }
}

/// This account's own device list, with whether each device is online and when it was last
/// seen (the relay fills that in only for the asking account). Verify the list before use.
#[derive(Debug, Clone, Copy)]
pub struct OwnDeviceList {
    /// This account.
    pub user: UserId,
}

impl ClientCall for OwnDeviceList {
    type Answer = (
        Option<SignedDeviceList>,
        Vec<tidings_protocol::client::DeviceSeen>,
    );
    const NAME: &'static str = "get own device list";
    fn into_request(self) -> Request {
        Request::GetDeviceList { user: self.user }
    }
    fn answer(response: Response) -> Result<Self::Answer, Response> {
        match response {
            Response::DeviceList { list, seen } => Ok((list.map(|list| *list), seen.into_vec())),
            other => Err(other),
        }
    }
}
