//! The session task's side of the page's social features: presence watches, typing notices
//! and statuses run on the live session as [`Command`]s, between its events, and what the
//! page hears of presence, typing and profile changes.

use futures::{
    StreamExt,
    channel::{mpsc, oneshot},
};
use serde_json::{Value, json};
use tidings_client::{
    Event, Session,
    events::TYPING_EXPIRES,
    runtime::{self, Instant},
    status::{Audience, StatusClock},
    typing::OutgoingTyping,
};
use tidings_protocol::{
    UserId,
    limits::MAX_PRESENCE_WATCH,
    presence::{PresenceReport, PresenceState},
};
use wasm_bindgen::prelude::*;

/// Commands waiting for the session task; more are refused (typing: dropped).
pub(crate) const COMMAND_QUEUE: usize = 16;

/// What the page asks of the session task.
pub(crate) enum Command {
    /// Watch the presence of every contact again (one was added).
    Watch,
    /// A key was typed in the chat with `who` (`sent`: its line was sent instead).
    Typing { who: String, sent: bool },
    /// Post a text status to every contact; answers what was posted.
    PostStatus {
        text: String,
        reply: oneshot::Sender<Result<Value, String>>,
    },
    /// Fetch the statuses the relay holds for us; answers the statuses held here.
    Statuses {
        reply: oneshot::Sender<Result<Value, String>>,
    },
}

/// A new command channel: the page's end for the `Device`, the session task's for
/// [`SessionSide::new`].
pub(crate) fn channel() -> (mpsc::Sender<Command>, mpsc::Receiver<Command>) {
    mpsc::channel(COMMAND_QUEUE)
}

/// What the session task is to do next.
pub(crate) enum Due {
    /// Run this command.
    Command(Command),
    /// Keys went idle: tell the other side typing stopped.
    Idle,
}

/// The session task's side: the commands and our typing state.
pub(crate) struct SessionSide {
    commands: mpsc::Receiver<Command>,
    typing: OutgoingTyping,
    /// Whom our typing notices go to.
    typing_to: Option<String>,
}

impl SessionSide {
    pub(crate) fn new(commands: mpsc::Receiver<Command>) -> Self {
        SessionSide {
            commands,
            typing: OutgoingTyping::default(),
            typing_to: None,
        }
    }

    /// A session was subscribed: watch the contacts' presence and report what is seen now.
    pub(crate) async fn on_connected(&mut self, session: &Session, on_event: &js_sys::Function) {
        self.typing = OutgoingTyping::default();
        watch(session, on_event).await;
    }

    /// The next command, or the moment keys went idle. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Due {
        let idle_at = self.typing.idle_at();
        let idle = async move {
            match idle_at {
                Some(at) => runtime::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = self.commands.next() => match command {
                Some(command) => Due::Command(command),
                // The device is gone; the session task ends on its nudge channel.
                None => std::future::pending().await,
            },
            () = idle => Due::Idle,
        }
    }

    /// Runs `due` on the live `session`. Failures are answered to the page (or, for typing
    /// and presence, only logged: the next event shows whether the session still lives).
    pub(crate) async fn run(
        &mut self,
        session: &mut Session,
        due: Due,
        on_event: &js_sys::Function,
    ) {
        let command = match due {
            Due::Idle => return self.stop_typing(session, false).await,
            Due::Command(command) => command,
        };
        match command {
            Command::Watch => watch(session, on_event).await,
            Command::Typing { who, sent: true } => {
                if self.typing_to.as_deref() == Some(who.as_str()) {
                    self.stop_typing(session, true).await;
                }
            }
            Command::Typing { who, sent: false } => {
                if self.typing_to.as_deref() != Some(who.as_str()) {
                    // Another chat: the one typed in before hears that typing stopped.
                    self.stop_typing(session, true).await;
                    self.typing_to = Some(who.clone());
                }
                if self.typing.on_key(Instant::now())
                    && let Err(error) = session.send_typing(&who, true).await
                {
                    tracing::debug!(%error, "a typing notice was not sent");
                }
            }
            Command::PostStatus { text, reply } => {
                let clock = StatusClock::system();
                let posted = session
                    .post_status(&clock, &text, &Audience::Contacts)
                    .await
                    .map(|posted| {
                        json!({
                            "id": posted.id.to_string(),
                            "expiresAt": posted.expires_at_ms,
                            "audience": posted.audience,
                            "unreachable": posted.unreachable,
                        })
                    })
                    .map_err(|error| error.to_string());
                let _ = reply.send(posted);
            }
            Command::Statuses { reply } => {
                let listed = statuses(session).await.map_err(|error| error.to_string());
                let _ = reply.send(listed);
            }
        }
    }

    async fn stop_typing(&mut self, session: &Session, sent_line: bool) {
        if !self.typing.stop_if(Instant::now(), sent_line) {
            return;
        }
        if let Some(who) = &self.typing_to
            && let Err(error) = session.send_typing(who, false).await
        {
            tracing::debug!(%error, "a typing stopped notice was not sent");
        }
    }
}

/// Watches every contact's presence (replacing the session's earlier watch) and reports
/// what is seen of each now.
async fn watch(session: &Session, on_event: &js_sys::Function) {
    let names: Vec<String> = match session.client().store().contacts() {
        Ok(contacts) => contacts
            .into_iter()
            .map(|(name, _)| name)
            .take(MAX_PRESENCE_WATCH)
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "the contacts could not be read to watch them");
            return;
        }
    };
    if names.is_empty() {
        return;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match session.watch_presence(&names).await {
        Ok(reports) => {
            for PresenceReport { user, state } in reports {
                emit(on_event, presence_json(&user, &state));
            }
        }
        Err(error) => tracing::info!(%error, "the contacts' presence cannot be watched"),
    }
}

/// Fetches what the relay holds for us and lists the statuses held here: contacts'
/// `theirs` (oldest first) and our own `mine` with how many saw each.
async fn statuses(session: &mut Session) -> Result<Value, tidings_client::ClientError> {
    let clock = StatusClock::system();
    session.fetch_statuses(&clock).await?;
    let client = session.client().clone();
    let now = clock.now_ms();
    let theirs: Vec<Value> = client
        .store()
        .received_statuses(now)?
        .iter()
        .map(|status| {
            json!({
                "id": status.id.to_string(),
                "poster": status.poster.to_string(),
                "name": client.display_name(&status.poster),
                "postedAt": status.posted_at_ms,
                "expiresAt": status.expires_at_ms,
                "text": status.text,
                "media": status.media.is_some(),
            })
        })
        .collect();
    let mine: Vec<Value> = client
        .store()
        .my_statuses(now)?
        .iter()
        .map(|status| {
            json!({
                "id": status.id.to_string(),
                "expiresAt": status.expires_at_ms,
                "text": status.text,
                "media": status.media.is_some(),
                "audience": status.audience.len(),
                "seenBy": status.seen_by.len(),
            })
        })
        .collect();
    Ok(json!({ "theirs": theirs, "mine": mine }))
}

fn emit(on_event: &js_sys::Function, event: Value) {
    let _ = on_event.call1(&JsValue::NULL, &event.to_string().into());
}

fn presence_json(user: &UserId, state: &PresenceState) -> Value {
    let (state, last_seen) = match state {
        PresenceState::Online => ("online", None),
        PresenceState::Offline { last_seen_ms } => ("offline", *last_seen_ms),
        PresenceState::Hidden => ("hidden", None),
    };
    json!({ "kind": "presence", "user": user.to_string(), "state": state, "lastSeen": last_seen })
}

/// What the page hears of the social events: `{kind: "presence", user, state, lastSeen}`,
/// `{kind: "typing", from, group, typing, expiresMs}`, `{kind: "profile", user}`.
pub(crate) fn event_json(event: &Event) -> Option<Value> {
    match event {
        Event::Presence { user, state } => Some(presence_json(user, state)),
        Event::Typing {
            from,
            group,
            typing,
        } => Some(json!({
            "kind": "typing",
            "from": from.to_string(),
            "group": group.map(|group| group.to_string()),
            "typing": typing,
            "expiresMs": TYPING_EXPIRES.as_millis() as u64,
        })),
        Event::ProfileChanged { user, .. } => {
            Some(json!({ "kind": "profile", "user": user.to_string() }))
        }
        _ => None,
    }
}
