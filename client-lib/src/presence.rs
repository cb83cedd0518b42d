//! Presence and typing from the device's side: who may see us, watching contacts, and
//! sending and reading typing notices.

use tidings_protocol::{
    Address, BoundedVec, EnvelopeId, Kind, Recipient,
    presence::{PresenceReport, TypingBody, Visibility},
};

use crate::{
    calls::{Ephemeral, SetPresence, WatchPresence},
    error::ClientError,
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
        let allowed = BoundedVec::new(allowed).map_err(|source| ClientError::TooMany {
            what: "contacts",
            source,
        })?;
        let asked = SetPresence {
            visibility,
            allowed,
        };
        self.connection().call(asked).await?;
        Ok(count)
    }

    /// Watches the presence of contacts (names or user ids), replacing this session's
    /// earlier watch: returns what we may see of each now; changes come as
    /// [`Event::Presence`].
    pub async fn watch_presence(&self, who: &[&str]) -> Result<Vec<PresenceReport>, ClientError> {
        let users = BoundedVec::new(self.client().resolve_all(who)?).map_err(|source| {
            ClientError::TooMany {
                what: "users to watch",
                source,
            }
        })?;
        Ok(self.connection().call(WatchPresence { users }).await?)
    }

    /// Tells a contact or group that we started (`true`) or stopped typing. Never stored:
    /// returns how many live devices (or their relays) took it, 0 if nobody was online.
    pub async fn send_typing(&self, who: &str, typing: bool) -> Result<u32, ClientError> {
        let client = self.client().clone();
        let recipient = match client.conversation(who)? {
            Conversation::Group(group) => Recipient::Group(group),
            Conversation::Direct(user) => {
                // The relay passes it to every live device of the user; any listed device
                // addresses them. No list yet: the first message fetches it; until then no
                // typing.
                let list = client
                    .blocking(move |inner| inner.store.device_list(&user))
                    .await?;
                let Some(device) =
                    list.and_then(|list| list.list.devices.first().map(|entry| entry.device))
                else {
                    return Ok(0);
                };
                Recipient::Direct(Address { user, device })
            }
        };
        let body = TypingBody { typing }.encode();
        let envelope = client
            .blocking(move |inner| {
                Ok(sign(
                    &inner.identity,
                    EnvelopeId::new(),
                    recipient,
                    Kind::Typing,
                    body,
                ))
            })
            .await?;
        Ok(self.connection().call(Ephemeral { envelope }).await?)
    }
}
