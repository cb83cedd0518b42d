//! The page's social features as `Device` methods: typing, profiles, status updates and
//! search over the history, all through the client core.
//!
//! Presence watches, typing notices and statuses need the live session: they go to the
//! session task as commands (`social_session.rs` runs them there). Profiles and search need
//! no session of the page's: they read the store, or (setting a profile) use the core's own
//! short connection.

use std::time::Duration;

use futures::channel::oneshot;
use serde_json::{Value, json};
use tidings_client::{
    Client, Conversation, Direction, MessageRecord,
    profile::ProfileUpdate,
    runtime,
    search::{DEFAULT_LIMIT, matches},
    store::SearchQuery,
};
use tidings_protocol::profile::Profile;
use wasm_bindgen::prelude::*;

use crate::{device::Device, social_session::Command};

/// How long a command that answers (posting, listing statuses) may wait for the session
/// (which may be reconnecting) and run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest search query, bytes.
const MAX_QUERY_BYTES: usize = 256;

/// Longest snippet of a search result, bytes (the rest of the message is left out).
const MAX_SNIPPET_BYTES: usize = 160;

/// Bytes of a snippet kept before its first match when the message is cut.
const SNIPPET_LEAD_BYTES: usize = 40;

fn js_error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

fn profile_json(profile: &Profile) -> Value {
    json!({ "name": profile.name, "about": profile.about, "version": profile.version })
}

/// The chat a message belongs to, by the name the chat list shows.
fn chat_name(client: &Client, record: &MessageRecord) -> (String, bool) {
    match record.conversation() {
        Conversation::Direct(user) => (
            client
                .store()
                .contact_name(&user)
                .ok()
                .flatten()
                .unwrap_or_else(|| user.to_string()),
            false,
        ),
        Conversation::Group(group) => (
            client
                .store()
                .group(&group)
                .ok()
                .flatten()
                .map_or_else(|| group.to_string(), |signed| signed.descriptor.name),
            true,
        ),
    }
}

/// The largest char boundary of `text` at or below `at`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A result's snippet as parts `{text, hit}`: at most [`MAX_SNIPPET_BYTES`] of `text`
/// around its first match, the matching words marked.
fn snippet(text: &str, words: &[String]) -> Vec<Value> {
    let hits = matches(text, words);
    let first = hits.first().map_or(0, |(start, _)| *start);
    let start = if text.len() <= MAX_SNIPPET_BYTES {
        0
    } else {
        floor_boundary(text, first.saturating_sub(SNIPPET_LEAD_BYTES))
    };
    let end = floor_boundary(text, start + MAX_SNIPPET_BYTES);
    let mut parts = Vec::new();
    let mut at = start;
    for (hit_start, hit_end) in hits {
        if hit_start < at || hit_end > end {
            continue;
        }
        if hit_start > at {
            parts.push(json!({ "text": &text[at..hit_start], "hit": false }));
        }
        parts.push(json!({ "text": &text[hit_start..hit_end], "hit": true }));
        at = hit_end;
    }
    if at < end {
        parts.push(json!({ "text": &text[at..end], "hit": false }));
    }
    if start > 0 {
        parts.insert(0, json!({ "text": "…", "hit": false }));
    }
    if end < text.len() {
        parts.push(json!({ "text": "…", "hit": false }));
    }
    parts
}

impl Device {
    fn command(&self, command: Command) -> Result<(), JsError> {
        let Some(commands) = &self.social else {
            return Err(JsError::new("the session has not started"));
        };
        commands
            .clone()
            .try_send(command)
            .map_err(|_| JsError::new("the session is busy; try again"))
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<Value, String>>) -> Command,
    ) -> Result<String, JsError> {
        let (reply, answer) = oneshot::channel();
        self.command(command(reply))?;
        match runtime::timeout(COMMAND_TIMEOUT, answer).await {
            Ok(Ok(Ok(value))) => Ok(value.to_string()),
            Ok(Ok(Err(error))) => Err(JsError::new(&error)),
            Ok(Err(_)) => Err(JsError::new("the session stopped")),
            Err(_) => Err(JsError::new("the session did not answer in time")),
        }
    }

    /// Has the session watch the contacts' presence again (after a contact was added).
    pub(crate) fn watch_contacts(&self) {
        let _ = self.command(Command::Watch);
    }
}

#[wasm_bindgen]
impl Device {
    /// A key was typed in the chat with `who`: "typing" is sent, throttled as every client
    /// does (again while keys keep coming, "stopped" once they pause).
    pub fn typing(&self, who: String) {
        // A full queue is a burst of keys: dropping one changes nothing the other side sees.
        let _ = self.command(Command::Typing { who, sent: false });
    }

    /// The line typed to `who` was sent: "stopped" is sent if "typing" was.
    #[wasm_bindgen(js_name = typingSent)]
    pub fn typing_sent(&self, who: String) {
        let _ = self.command(Command::Typing { who, sent: true });
    }

    /// Profiles as JSON: `{own: {name, about, version} | null, contacts: [{name, user,
    /// profile: {name, about, version} | null}]}` (what this device holds; contacts'
    /// newer versions are fetched by the session when they announce them).
    pub fn profiles(&self) -> Result<String, JsError> {
        let own = self.client.own_profile().map_err(js_error)?;
        let store = self.client.store();
        let contacts: Vec<Value> = store
            .contacts()
            .map_err(js_error)?
            .iter()
            .map(|(name, card)| {
                let profile = store
                    .known_profile(&card.user)
                    .ok()
                    .flatten()
                    .and_then(|known| known.profile);
                json!({
                    "name": name,
                    "user": card.user.to_string(),
                    "profile": profile.as_ref().map(profile_json),
                })
            })
            .collect();
        Ok(json!({ "own": own.as_ref().map(profile_json), "contacts": contacts }).to_string())
    }

    /// Sets our profile's name and about text (the picture stays); returns it as JSON.
    /// Contacts and our other devices get the new version.
    #[wasm_bindgen(js_name = setProfile)]
    pub async fn set_profile(&self, name: String, about: String) -> Result<String, JsError> {
        let update = ProfileUpdate {
            name: Some(name.trim().to_string()),
            about: Some(about.trim().to_string()),
            picture: None,
        };
        let profile = self.client.set_profile(update).await.map_err(js_error)?;
        Ok(profile_json(&profile).to_string())
    }

    /// Posts a text status for 24 hours to every contact; returns `{id, expiresAt,
    /// audience, unreachable}`.
    #[wasm_bindgen(js_name = postStatus)]
    pub async fn post_status(&self, text: String) -> Result<String, JsError> {
        self.ask(|reply| Command::PostStatus { text, reply }).await
    }

    /// Fetches statuses and returns those held: `{theirs: [{id, poster, name, postedAt,
    /// expiresAt, text, media}], mine: [{id, expiresAt, text, media, audience, seenBy}]}`.
    pub async fn statuses(&self) -> Result<String, JsError> {
        self.ask(|reply| Command::Statuses { reply }).await
    }

    /// Searches the history on this device (every word of `query`, any case), newest
    /// first: `[{id, chat, group, sender, outgoing, sentAt, parts: [{text, hit}]}]`.
    pub fn search(&self, query: String) -> Result<String, JsError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(JsError::new(&format!(
                "a search is at most {MAX_QUERY_BYTES} bytes"
            )));
        }
        let query = SearchQuery {
            words: query,
            within: None,
            from: None,
            limit: DEFAULT_LIMIT,
        };
        let found = self.client.store().search(&query).map_err(js_error)?;
        let results: Vec<Value> = found
            .records
            .iter()
            .map(|record| {
                let (chat, group) = chat_name(&self.client, record);
                let outgoing = record.direction == Direction::Outgoing;
                let sender = if outgoing {
                    "me".to_string()
                } else {
                    self.client.display_name(&record.peer)
                };
                let body = match &record.media {
                    Some(media) => tidings_client::media::describe(media),
                    None => record.text.clone(),
                };
                json!({
                    "id": record.id.to_string(),
                    "chat": chat,
                    "group": group,
                    "sender": sender,
                    "outgoing": outgoing,
                    "sentAt": record.sent_at_ms,
                    "parts": snippet(&body, &found.words),
                })
            })
            .collect();
        Ok(Value::Array(results).to_string())
    }
}
