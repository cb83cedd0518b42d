//! The browser device: a Tidings account kept in OPFS (key file sealed under a passphrase,
//! redb store), its session to the home relay, and what the page asks of it.
//!
//! One task owns the session (connect, subscribe, receive, flush, reconnect); the page's
//! calls read the store directly or queue into it and nudge that task.

use std::time::Duration;

use futures::{StreamExt, channel::mpsc};
use serde_json::{Value, json};
use tidings_client::{
    Client, Event, MessageRecord, MessageStatus, browser, runtime, store::Direction,
};
use tidings_protocol::card::ContactCard;
use wasm_bindgen::prelude::*;

/// The OPFS directory of this origin's device.
pub(crate) const DEVICE_DIR: &str = "tidings-device";

/// The pause before connecting again after the session ended, and its longest value.
const FIRST_RECONNECT_PAUSE: Duration = Duration::from_millis(250);
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(4);

/// Nudges (something was queued) waiting for the session task; more are merged.
const NUDGE_QUEUE: usize = 8;

/// Most messages of one conversation handed to the page at once (the newest).
const MAX_HISTORY: usize = 500;

/// Registration may take this long (a relay lookup, a handshake, key upload).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A device opened in this worker.
#[wasm_bindgen]
pub struct Device {
    pub(crate) client: Client,
    pub(crate) nudge: Option<mpsc::Sender<()>>,
    pub(crate) social: Option<mpsc::Sender<crate::social_session::Command>>,
}

impl Device {
    /// A device of `client`, its session not started yet.
    pub(crate) fn opened(client: Client) -> Device {
        Device {
            client,
            nudge: None,
            social: None,
        }
    }
}

pub(crate) fn js_error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

#[wasm_bindgen]
impl Device {
    /// Whether this origin already holds a device (then unlock it; else create one).
    pub async fn exists() -> Result<bool, JsError> {
        browser::device_exists(DEVICE_DIR).await.map_err(js_error)
    }

    /// Creates a new account on this device, its key file sealed under `passphrase`, and
    /// registers it at the relay at `relay` (a `/ws` multiaddr with `/p2p/`).
    pub async fn create(passphrase: String, relay: String) -> Result<Device, JsError> {
        let address = relay.parse().map_err(js_error)?;
        let client = browser::create_device(DEVICE_DIR, Some(&passphrase))
            .await
            .map_err(js_error)?;
        let client =
            crate::unregistered::register_or_remove(client, DEVICE_DIR, address, REGISTER_TIMEOUT)
                .await?;
        Ok(Device::opened(client))
    }

    /// Opens this origin's device with its passphrase.
    pub async fn unlock(passphrase: String) -> Result<Device, JsError> {
        let client = browser::open_device(DEVICE_DIR, Some(&passphrase))
            .await
            .map_err(js_error)?;
        Ok(Device::opened(client))
    }

    /// Starts the session with the home relay; `on_event(json)` gets each event as JSON text:
    /// `{kind: "link", state, detail}`, `{kind: "message", message}`, `{kind: "status",
    /// peer, id, status}`, `{kind: "group", group}` (a group was joined or changed).
    pub fn start(&mut self, on_event: js_sys::Function) {
        let (nudge, nudges) = mpsc::channel(NUDGE_QUEUE);
        self.nudge = Some(nudge);
        let (social, commands) = crate::social_session::channel();
        self.social = Some(social);
        let social = crate::social_session::SessionSide::new(commands);
        runtime::spawn(run_session(self.client.clone(), on_event, nudges, social));
    }

    /// This account's user id.
    #[wasm_bindgen(js_name = userId)]
    pub fn user_id(&self) -> String {
        self.client.user_id().to_string()
    }

    /// This account's contact card (`tidings:...`), to give to others.
    pub fn card(&self) -> Result<String, JsError> {
        Ok(self.client.card(None).map_err(js_error)?.to_string())
    }

    /// Adds the contact card `card` under `name`.
    #[wasm_bindgen(js_name = addContact)]
    pub fn add_contact(&self, name: String, card: String) -> Result<(), JsError> {
        let card: ContactCard = card
            .trim()
            .parse()
            .map_err(|error| JsError::new(&format!("not a contact card: {error}")))?;
        self.client.add_contact(&name, &card).map_err(js_error)?;
        self.watch_contacts();
        Ok(())
    }

    /// The chats as JSON: contacts `{name, user}` then groups `{name, group}`.
    pub fn chats(&self) -> Result<String, JsError> {
        let contacts = self.client.store().contacts().map_err(js_error)?;
        let groups = self.client.store().groups().map_err(js_error)?;
        let list: Vec<Value> = contacts
            .iter()
            .map(|(name, card)| json!({ "name": name, "user": card.user.to_string() }))
            .chain(groups.iter().map(|signed| {
                let group = &signed.descriptor;
                json!({ "name": group.name, "group": group.group.to_string() })
            }))
            .collect();
        Ok(Value::Array(list).to_string())
    }

    /// The conversation with `who` (the newest messages), as JSON: `[message]`.
    pub fn history(&self, who: String) -> Result<String, JsError> {
        let history = self.client.history(&who).map_err(js_error)?;
        let skip = history.len().saturating_sub(MAX_HISTORY);
        let list: Vec<Value> = history.iter().skip(skip).map(message_json).collect();
        Ok(Value::Array(list).to_string())
    }

    /// Queues `text` to `who` and has the session send it; returns the message as JSON.
    pub async fn send(&self, who: String, text: String) -> Result<String, JsError> {
        let record = self
            .client
            .queue_text(&who, &text)
            .await
            .map_err(js_error)?;
        self.nudge();
        Ok(message_json(&record).to_string())
    }

    /// Marks the conversation with `who` read (the sender sees it read).
    #[wasm_bindgen(js_name = markRead)]
    pub async fn mark_read(&self, who: String) -> Result<usize, JsError> {
        let marked = self.client.mark_read(&who).await.map_err(js_error)?;
        self.nudge();
        Ok(marked)
    }

    pub(crate) fn nudge(&self) {
        if let Some(nudge) = &self.nudge {
            // A full queue already holds a nudge: the flush it causes sends this too.
            let _ = nudge.clone().try_send(());
        }
    }
}

fn status_name(status: &MessageStatus) -> &'static str {
    match status {
        MessageStatus::Pending => "pending",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Read => "read",
        MessageStatus::Received => "received",
        MessageStatus::Failed(_) => "failed",
    }
}

pub(crate) fn message_json(record: &MessageRecord) -> Value {
    json!({
        "id": record.id.to_string(),
        "peer": record.peer.to_string(),
        "group": record.group.map(|group| group.to_string()),
        "outgoing": matches!(record.direction, Direction::Outgoing),
        "text": record.text,
        "sentAt": record.sent_at_ms,
        "status": status_name(&record.status),
        "media": record.media.as_deref().map(crate::media_view::media_json),
    })
}

fn emit(on_event: &js_sys::Function, event: Value) {
    let _ = on_event.call1(&JsValue::NULL, &event.to_string().into());
}

fn link(on_event: &js_sys::Function, state: &str, detail: &str) {
    emit(
        on_event,
        json!({ "kind": "link", "state": state, "detail": detail }),
    );
}

/// What the page hears of a session event (others are for the store only).
fn event_json(event: &Event) -> Option<Value> {
    match event {
        Event::Message(record) => {
            Some(json!({ "kind": "message", "message": message_json(record) }))
        }
        Event::Status { peer, id, status } => Some(json!({
            "kind": "status",
            "peer": peer.to_string(),
            "id": id.to_string(),
            "status": status_name(status),
        })),
        Event::GroupChanged { group, .. } => {
            Some(json!({ "kind": "group", "group": group.to_string() }))
        }
        Event::ContactsSynced | Event::HistorySynced { .. } => Some(json!({ "kind": "synced" })),
        Event::Presence { .. } | Event::Typing { .. } | Event::ProfileChanged { .. } => {
            crate::social_session::event_json(event)
        }
        _ => None,
    }
}

/// Keeps a subscribed session with the home relay until the page's device is dropped:
/// reports each event, flushes when nudged, reconnects with a growing pause.
async fn run_session(
    client: Client,
    on_event: js_sys::Function,
    mut nudges: mpsc::Receiver<()>,
    mut social: crate::social_session::SessionSide,
) {
    let mut pause = FIRST_RECONNECT_PAUSE;
    loop {
        link(&on_event, "connecting", "");
        let mut session = match client.connect().await {
            Ok(session) => session,
            Err(error) => {
                link(&on_event, "disconnected", &error.to_string());
                runtime::sleep(pause).await;
                pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
                continue;
            }
        };
        if let Err(error) = session.subscribe().await {
            link(&on_event, "disconnected", &error.to_string());
            runtime::sleep(pause).await;
            pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
            continue;
        }
        pause = FIRST_RECONNECT_PAUSE;
        social.on_connected(&session, &on_event).await;
        link(&on_event, "connected", "");
        loop {
            tokio::select! {
                nudge = nudges.next() => {
                    if nudge.is_none() {
                        session.close().await;
                        return;
                    }
                    if let Err(error) = session.flush().await {
                        link(&on_event, "disconnected", &error.to_string());
                        break;
                    }
                }
                due = social.next() => social.run(&mut session, due, &on_event).await,
                event = session.next_event() => match event {
                    Ok(event) => {
                        if let Some(event) = event_json(&event) {
                            emit(&on_event, event);
                        }
                    }
                    Err(error) => {
                        link(&on_event, "disconnected", &error.to_string());
                        break;
                    }
                },
            }
        }
    }
}
