//! What a running client reports: new messages, tick changes, problems.

use tidings_protocol::{
    Address, DeviceListError, EnvelopeId, GroupId, Kind, RawEnvelope, Recipient, UserId,
    presence::{PresenceState, TypingBody},
};

use crate::store::{Conversation, MessageRecord, MessageStatus};

/// Something that happened to this user's conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message arrived (already stored; delivered receipt queued).
    Message(MessageRecord),
    /// A message we sent moved on: ✓ sent, ✓✓ delivered, read, or failed.
    Status {
        /// The conversation.
        peer: UserId,
        /// The message.
        id: EnvelopeId,
        /// Its new status.
        status: MessageStatus,
    },
    /// An envelope arrived that could not be opened; it is recorded as failed in the history.
    Undecryptable {
        /// Who it claims to come from.
        from: Address,
        /// Its id.
        id: EnvelopeId,
        /// Why.
        reason: String,
    },
    /// A group's descriptor changed (created, members added or removed, renamed, ...).
    GroupChanged {
        /// The group.
        group: GroupId,
        /// Its new version.
        version: u64,
        /// What changed, for people.
        summary: String,
    },
    /// A member's device has, or its user read, one of our group messages.
    GroupReceipt {
        /// The group.
        group: GroupId,
        /// The message.
        id: EnvelopeId,
        /// The member.
        member: UserId,
        /// Delivered or read.
        status: MessageStatus,
    },
    /// A device list a relay handed out was refused (forged, older than the one held,
    /// another user's); the held list stays in use.
    DeviceListRefused {
        /// Whose list it claimed to be.
        user: UserId,
        /// Why it was refused.
        reason: DeviceListError,
    },
    /// A user (or this account) said their device list changed (a device linked or
    /// removed): it is asked for again before anything is next encrypted to them.
    DevicesChanged {
        /// Whose list changed.
        user: UserId,
    },
    /// Another device of this account read a conversation up to a message: it is read here
    /// too.
    ReadElsewhere {
        /// The conversation.
        conversation: Conversation,
        /// How many messages became read here.
        count: usize,
    },
    /// Another device of this account changed the contact list; the change applies here.
    ContactsSynced,
    /// Part of the recent history arrived from another device of this account (this device
    /// joined it): how far along it is.
    HistorySynced {
        /// Messages of the history received so far.
        received: u32,
        /// Messages the whole history has.
        total: u32,
    },
    /// Everything the relay held for us when we connected has arrived.
    CaughtUp,
    /// A watched user's presence changed (or what we may see of it).
    Presence {
        /// Whose.
        user: UserId,
        /// Online, last seen, or hidden from us.
        state: PresenceState,
    },
    /// Someone started or stopped typing to us (or in a group). A "started" without a
    /// "stopped" expires after [`TYPING_EXPIRES`].
    Typing {
        /// Who.
        from: UserId,
        /// The group, for typing in a group.
        group: Option<GroupId>,
        /// Started (true) or stopped (false).
        typing: bool,
    },
    /// A contact (or another device of ours) shared their profile key: profile `version`
    /// is out, and is fetched from their home relay.
    ProfileChanged {
        /// Whose profile.
        user: UserId,
        /// The version the key opens.
        version: u64,
    },
}

/// How long "typing…" is shown without a new notice.
pub const TYPING_EXPIRES: std::time::Duration = std::time::Duration::from_secs(6);

/// The event a typing notice means, if its signature holds and it is one.
pub(crate) fn typing_event(raw: &RawEnvelope) -> Option<Event> {
    let envelope = raw.open().ok()?;
    if envelope.kind != Kind::Typing {
        return None;
    }
    let body = TypingBody::decode(&envelope.body).ok()?;
    let group = match envelope.recipient {
        Recipient::Group(group) => Some(group),
        Recipient::Direct(_) => None,
    };
    Some(Event::Typing {
        from: envelope.sender.user,
        group,
        typing: body.typing,
    })
}
