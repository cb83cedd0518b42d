//! How messages, ticks and times are printed.

use tidings_client::{Client, Direction, Event, MessageRecord, MessageStatus, ReceiptCounts};

/// Local wall-clock time of a millisecond timestamp.
pub fn time(ms: u64, with_date: bool) -> String {
    let Ok(timestamp) = jiff::Timestamp::from_millisecond(ms as i64) else {
        return "?".into();
    };
    let zoned = timestamp.to_zoned(jiff::tz::TimeZone::system());
    if with_date {
        zoned.strftime("%Y-%m-%d %H:%M").to_string()
    } else {
        zoned.strftime("%H:%M:%S").to_string()
    }
}

fn preview(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// `text` safe to print on a terminal: control characters (escape sequences could move the
/// cursor, rewrite earlier lines or retitle the window) and bidirectional overrides (which
/// reorder what is shown) become U+FFFD; newlines and tabs stay. Everything a peer wrote
/// (texts, names, reasons) reaches the terminal through this.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if (c.is_control() && c != '\n' && c != '\t') || bidi {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// What a message shows: its text, or for media `[photo] name (size) caption  #ID` (the id
/// is what `tidings media save` and `tidings forward` take).
pub fn body(record: &MessageRecord) -> String {
    match &record.media {
        Some(media) => format!("{}  #{}", tidings_client::media::describe(media), record.id),
        None => record.text.clone(),
    }
}

/// One line of `history`.
pub fn history_line(client: &Client, record: &MessageRecord) -> String {
    printable(&history_text(client, record))
}

fn history_text(client: &Client, record: &MessageRecord) -> String {
    let when = time(record.sent_at_ms, true);
    match (&record.direction, &record.status) {
        (Direction::Outgoing, status) if record.group.is_some() && status.is_sent() => {
            let counts = client.receipt_counts(&record.id).unwrap_or_default();
            format!("[{when}] me: {}  {}", body(record), group_ticks(&counts))
        }
        (Direction::Outgoing, status) => {
            format!("[{when}] me: {}  {}", body(record), ticks(status))
        }
        (Direction::Incoming, MessageStatus::Failed(reason)) => {
            format!("[{when}] {}: ✗ {reason}", client.display_name(&record.peer))
        }
        (Direction::Incoming, _) => {
            format!(
                "[{when}] {}: {}",
                client.display_name(&record.peer),
                body(record)
            )
        }
    }
}

/// The tick marks of an outgoing message, with the reason when it failed.
pub fn ticks(status: &MessageStatus) -> String {
    match status {
        MessageStatus::Failed(reason) => format!("✗ failed: {}", printable(reason)),
        MessageStatus::Pending => "… pending".into(),
        other => other.ticks().into(),
    }
}

/// A group message's ticks: how many members got and read it (and how many it failed for).
pub fn group_ticks(counts: &ReceiptCounts) -> String {
    let mut line = format!(
        "✓ delivered to {} of {}, read by {} of {}",
        counts.delivered, counts.members, counts.read, counts.members
    );
    if counts.failed > 0 {
        line.push_str(&format!(", ✗ failed for {}", counts.failed));
    }
    line
}

/// One line of `listen`, or None for events not worth a line.
pub fn event_line(client: &Client, event: &Event) -> Option<String> {
    event_text(client, event).map(|line| printable(&line))
}

fn event_text(client: &Client, event: &Event) -> Option<String> {
    let now = time(tidings_protocol::now_ms(), false);
    let group_name = |group: &tidings_protocol::GroupId| {
        client
            .store()
            .group(group)
            .ok()
            .flatten()
            .map(|d| d.descriptor.name)
            .unwrap_or_else(|| group.to_string())
    };
    match event {
        Event::Message(record) => Some(match &record.group {
            Some(group) => format!(
                "[{now}] [#{}] {}: {}",
                group_name(group),
                client.display_name(&record.peer),
                body(record)
            ),
            None if record.direction == Direction::Outgoing => format!(
                "[{now}] me (another device) → {}: {}",
                client.display_name(&record.peer),
                body(record)
            ),
            None => format!(
                "[{now}] {}: {}",
                client.display_name(&record.peer),
                body(record)
            ),
        }),
        Event::DeviceListRefused { user, reason } => Some(format!(
            "[{now}] ✗ refused a device list for {}: {reason}",
            client.display_name(user)
        )),
        Event::DevicesChanged { user } => Some(format!(
            "[{now}] {} linked or removed a device",
            client.display_name(user)
        )),
        Event::HistorySynced { received, total } => Some(format!(
            "[{now}] history from your other device: {received} of {total} messages"
        )),
        Event::ReadElsewhere { .. } | Event::ContactsSynced => None,
        Event::GroupChanged { group, summary, .. } => {
            Some(format!("[{now}] [#{}] {summary}", group_name(group)))
        }
        Event::GroupReceipt {
            group,
            id,
            member,
            status,
        } => {
            let counts = client.receipt_counts(id).unwrap_or_default();
            let what = match status {
                MessageStatus::Read => "read your message".to_string(),
                MessageStatus::Failed(reason) => format!("did not get your message ({reason})"),
                _ => "received your message".to_string(),
            };
            Some(format!(
                "[{now}] [#{}] {} {what} ({})",
                group_name(group),
                client.display_name(member),
                group_ticks(&counts)
            ))
        }
        Event::Status { peer, id, status } => {
            let text = client
                .store()
                .message(id)
                .ok()
                .flatten()
                .map(|record| preview(&body(&record)))
                .unwrap_or_default();
            let who = client.display_name(peer);
            let what = match status {
                MessageStatus::Sent => format!("✓ sent to {who}"),
                MessageStatus::Delivered => format!("✓✓ delivered to {who}"),
                MessageStatus::Read => format!("read by {who}"),
                MessageStatus::Failed(reason) => format!("✗ not sent to {who}: {reason}"),
                MessageStatus::Pending | MessageStatus::Received => return None,
            };
            Some(format!("[{now}] {what}: \"{text}\""))
        }
        Event::Undecryptable { from, reason, .. } => Some(format!(
            "[{now}] ✗ a message from {} could not be opened: {reason}",
            client.display_name(&from.user)
        )),
        Event::CaughtUp => Some(format!("[{now}] — up to date —")),
        Event::Presence { user, state } => Some(format!(
            "[{now}] {} is {}",
            client.display_name(user),
            presence_text(state)
        )),
        Event::Typing {
            from,
            group,
            typing,
        } => {
            let who = client.display_name(from);
            let place = group
                .as_ref()
                .map(|g| format!("[#{}] ", group_name(g)))
                .unwrap_or_default();
            Some(match typing {
                true => format!("[{now}] {place}{who} is typing…"),
                false => format!("[{now}] {place}{who} stopped typing"),
            })
        }
        Event::ProfileChanged { user, .. } => Some(format!(
            "[{now}] {} updated their profile",
            client.display_name(user)
        )),
    }
}

/// "online", "last seen 2026-11-23 09:18", "offline", or "hidden" for a presence state.
pub fn presence_text(state: &tidings_protocol::presence::PresenceState) -> String {
    use tidings_protocol::presence::PresenceState;
    match state {
        PresenceState::Online => "online".into(),
        PresenceState::Offline {
            last_seen_ms: Some(at),
        } => format!("offline, last seen {}", time(*at, true)),
        PresenceState::Offline { last_seen_ms: None } => "offline".into(),
        PresenceState::Hidden => "not sharing presence with you".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escape_sequences_and_bidi_overrides_from_peers_never_reach_the_terminal() {
        let hostile =
            "hi\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[1A\rfake line\u{9b}31m\u{202e}gnp.exe\nok\tok";
        let shown = printable(hostile);
        assert!(
            !shown
                .chars()
                .any(|c| (c.is_control() && c != '\n' && c != '\t')
                    || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{shown:?}"
        );
        assert!(shown.ends_with("\nok\tok"));
        assert_eq!(printable("plain ✓✓ text"), "plain ✓✓ text");
    }
}
