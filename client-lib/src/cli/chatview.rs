//! `tidings chat NAME`: a live chat view in the terminal: recent history with ticks,
//! presence, "typing…", Enter sends, and what is on screen is marked read.

use std::{io::Write, time::Duration};

use crossterm::{
    event::{Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    terminal,
};
use futures::StreamExt;
use tidings_client::{
    Client, Conversation, Event, Session, events::TYPING_EXPIRES, runtime::Instant,
    typing::OutgoingTyping,
};

use super::format;

/// History lines shown when the view opens.
const BACKLOG: usize = 20;

/// Leaves raw mode however the view ends.
struct RawMode;

impl RawMode {
    fn enter() -> anyhow::Result<Self> {
        terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
        println!();
    }
}

/// Prints a line above the input line and redraws the input.
fn print_above(line: &str, input: &str) {
    let mut out = std::io::stdout();
    let _ = write!(out, "\r\x1b[2K{line}\r\n> {input}");
    let _ = out.flush();
}

fn redraw(input: &str) {
    let mut out = std::io::stdout();
    let _ = write!(out, "\r\x1b[2K> {input}");
    let _ = out.flush();
}

fn belongs(event: &Event, conversation: &Conversation) -> bool {
    match (event, conversation) {
        (Event::Message(record), Conversation::Group(group)) => record.group == Some(*group),
        (Event::Message(record), Conversation::Direct(user)) => {
            record.group.is_none() && record.peer == *user
        }
        (Event::Status { peer, .. }, Conversation::Direct(user)) => peer == user,
        (Event::Presence { user: who, .. }, Conversation::Direct(user)) => who == user,
        (Event::Typing { from, group, .. }, Conversation::Direct(user)) => {
            group.is_none() && from == user
        }
        (Event::Typing { group, .. }, Conversation::Group(id)) => *group == Some(*id),
        (
            Event::GroupReceipt { group, .. } | Event::GroupChanged { group, .. },
            Conversation::Group(id),
        ) => group == id,
        _ => false,
    }
}

async fn header(client: &Client, session: &Session, who: &str) -> anyhow::Result<String> {
    Ok(match client.conversation(who)? {
        Conversation::Direct(_) => {
            let state = session
                .watch_presence(&[who])
                .await?
                .first()
                .map(|report| format::presence_text(&report.state))
                .unwrap_or_default();
            format!("── {who} · {state} ──")
        }
        Conversation::Group(group) => {
            let members = client.group(&group)?.descriptor.members.len();
            format!("── #{who} · {members} members ──")
        }
    })
}

pub async fn chat(client: &Client, who: &str) -> anyhow::Result<()> {
    let conversation = client.conversation(who)?;
    let mut session = client.connect().await?;
    session.subscribe().await?;
    println!("{}", header(client, &session, who).await?);
    let history = client.store().history(&conversation)?;
    for record in history.iter().skip(history.len().saturating_sub(BACKLOG)) {
        println!("{}", format::history_line(client, record));
    }
    println!("(Enter sends; `/file PATH` sends a file; Esc or Ctrl-C leaves)");
    session.mark_read(who).await?;

    let _raw = RawMode::enter()?;
    let mut keys = EventStream::new();
    let mut input = String::new();
    let mut typing = OutgoingTyping::default();
    let mut their_typing: Option<Instant> = None;
    redraw(&input);
    loop {
        tokio::select! {
            key = keys.next() => {
                let Some(Ok(TermEvent::Key(KeyEvent { code, modifiers, kind: KeyEventKind::Press, .. }))) = key else {
                    if key.is_none() { return Ok(()) }
                    continue;
                };
                match code {
                    KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
                    KeyCode::Enter => {
                        let text = std::mem::take(&mut input);
                        if typing.stop_if(Instant::now(), true) {
                            let _ = session.send_typing(who, false).await;
                        }
                        if let Some(file) = text.strip_prefix("/file ") {
                            // Sent without a bar: the view's own line is the input line.
                            let line = match session
                                .send_file(who, std::path::Path::new(file.trim()), None, |_| {})
                                .await
                            {
                                Ok(sent) => format::history_line(client, &sent.record),
                                Err(error) => format!("✗ {}", format::printable(&error.to_string())),
                            };
                            print_above(&line, &input);
                        } else if !text.trim().is_empty() {
                            let record = session.send_text(who, &text).await?;
                            print_above(&format::history_line(client, &record), &input);
                        }
                    }
                    KeyCode::Backspace => {
                        input.pop();
                    }
                    KeyCode::Char(c) => {
                        input.push(c);
                        if typing.on_key(Instant::now()) {
                            let _ = session.send_typing(who, true).await;
                        }
                    }
                    _ => {}
                }
                redraw(&input);
            }
            event = session.next_event() => {
                let event = event?;
                if !belongs(&event, &conversation) {
                    continue;
                }
                match &event {
                    Event::Typing { typing: true, .. } => {
                        if their_typing.is_none() {
                            print_above(&format::event_line(client, &event).unwrap_or_default(), &input);
                        }
                        their_typing = Some(Instant::now());
                        continue;
                    }
                    Event::Typing { typing: false, .. } => {
                        their_typing = None;
                        continue;
                    }
                    Event::Message(_) => {
                        their_typing = None;
                        // It is on screen: it is read.
                        session.mark_read(who).await?;
                    }
                    _ => {}
                }
                if let Some(line) = format::event_line(client, &event) {
                    print_above(&line, &input);
                }
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if typing.stop_if(Instant::now(), false) {
                    let _ = session.send_typing(who, false).await;
                }
                if their_typing.is_some_and(|since| since.elapsed() >= TYPING_EXPIRES) {
                    their_typing = None;
                }
            }
        }
    }
}
