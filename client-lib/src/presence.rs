//! Presence and typing from the device's side: who may see us, watching contacts, and
//! sending and reading typing notices.

use tidings_protocol::{
    Address, BoundedVec, EnvelopeId, Kind, RawEnvelope, Recipient,
    client::{Request, Response},
    presence::{PresenceReport, TypingBody, Visibility},
};

use crate::{
    client::ClientError,
    events::Event,
    session::Session,
    store::{Conversation, sign},
};

impl Session {
    /// Chooses who may see our presence and last seen. With `Visibility::Contacts`, the
    /// list kept at the relay is our current contacts (call again after adding some).
    pub async fn set_presence(&self, visibility: Visibility) -> Result<usize, ClientError> {
        let allowed = match visibility {
            Visibility::Contacts => self
                .client()
                .store()
                .contacts()?
                .into_iter()
                .map(|(_, card)| card.user)
                .collect(),
            Visibility::Everyone | Visibility::Nobody => Vec::new(),
        };
        let count = allowed.len();
        let allowed = BoundedVec::new(allowed)
            .map_err(|error| ClientError::Unexpected(format!("too many contacts: {error}")))?;
        match self
            .request_pub(Request::SetPresence {
                visibility,
                allowed,
            })
            .await?
        {
            Response::PresenceSet => Ok(count),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Watches the presence of contacts (names or user ids), replacing this session's
    /// earlier watch: returns what we may see of each now; changes come as
    /// [`Event::Presence`].
    pub async fn watch_presence(&self, who: &[&str]) -> Result<Vec<PresenceReport>, ClientError> {
        let users = BoundedVec::new(self.client().resolve_all(who)?)
            .map_err(|error| ClientError::Unexpected(format!("too many users: {error}")))?;
        match self.request_pub(Request::WatchPresence { users }).await? {
            Response::Presence { reports } => Ok(reports.into_vec()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Tells a contact or group that we started (`true`) or stopped typing. Never stored:
    /// returns how many live devices (or their relays) took it, 0 if nobody was online.
    pub async fn send_typing(&self, who: &str, typing: bool) -> Result<u32, ClientError> {
        let client = self.client().clone();
        let recipient = match client.conversation(who)? {
            Conversation::Group(group) => Recipient::Group(group),
            Conversation::Direct(user) => {
                let device = client
                    .blocking(move |inner| inner.store.device_for(&user))
                    .await?;
                // No session yet: the first message opens one; until then no typing.
                let Some(device) = device else { return Ok(0) };
                Recipient::Direct(Address { user, device })
            }
        };
        let body = TypingBody { typing }.encode();
        let envelope = client
            .blocking(move |inner| {
                Ok(sign(
                    &inner.identity,
                    EnvelopeId::random(),
                    recipient,
                    Kind::Typing,
                    body,
                ))
            })
            .await?;
        match self.request_pub(Request::Ephemeral { envelope }).await? {
            Response::EphemeralPassed { reached } => Ok(reached),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}

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
