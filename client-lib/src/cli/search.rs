//! `tidings search` (local search over the decrypted history) and `tidings delete` (one
//! message, on this device).

use std::io::IsTerminal;

use anyhow::Context;
use tidings_client::{
    Client, Conversation, Direction, MessageRecord,
    search::{DEFAULT_LIMIT, highlight},
    store::{SearchQuery, Sender},
};
use tidings_protocol::EnvelopeId;

use super::format::{printable, time};

/// Prints the messages holding every one of `words`, newest first, matches highlighted.
pub fn search(
    client: &Client,
    words: &[String],
    within: Option<&str>,
    from: Option<&str>,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let query = SearchQuery {
        words: words.join(" "),
        within: within.map(|name| client.conversation(name)).transpose()?,
        from: from.map(|name| sender(client, name)).transpose()?,
        limit: limit.unwrap_or(DEFAULT_LIMIT),
    };
    let found = client.store().search(&query)?;
    if found.records.is_empty() {
        println!("no messages found");
        return Ok(());
    }
    let (open, close) = if std::io::stdout().is_terminal() {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("*", "*")
    };
    for record in &found.records {
        // Made printable before the highlight's own escape sequences go in.
        let body = highlight(&printable(&body(record)), &found.words, open, close);
        println!(
            "[{}] {}: {body}  #{}",
            time(record.sent_at_ms, true),
            printable(&place(client, record)),
            record.id
        );
    }
    Ok(())
}

/// Deletes one message (by the #ID `search` shows) from this device's history.
pub fn delete(client: &Client, id: &str) -> anyhow::Result<()> {
    let id: EnvelopeId = id
        .trim_start_matches('#')
        .parse()
        .ok()
        .with_context(|| format!("{id:?} is not a message id (the #ID `search` shows)"))?;
    match client.store().delete_message(&id)? {
        Some(_) => {
            println!(
                "deleted #{id} from this device (other devices and the other side keep theirs)"
            );
            Ok(())
        }
        None => anyhow::bail!("no message #{id} here"),
    }
}

/// `me`, a contact name or a user id, as whose messages to keep.
fn sender(client: &Client, name: &str) -> anyhow::Result<Sender> {
    if name == "me" {
        return Ok(Sender::Me);
    }
    let user = client.resolve(name)?;
    Ok(if user == client.user_id() {
        Sender::Me
    } else {
        Sender::User(user)
    })
}

/// Where a message is and who wrote it: `bob`, `me → bob`, `#group / bob`.
fn place(client: &Client, record: &MessageRecord) -> String {
    let author = match record.direction {
        Direction::Outgoing => "me".to_string(),
        Direction::Incoming => client.display_name(&record.peer),
    };
    match record.conversation() {
        Conversation::Group(group) => {
            let name = client
                .store()
                .group(&group)
                .ok()
                .flatten()
                .map_or_else(|| group.to_string(), |d| d.descriptor.name);
            format!("#{name} / {author}")
        }
        Conversation::Direct(peer) if record.direction == Direction::Outgoing => {
            format!("me → {}", client.display_name(&peer))
        }
        Conversation::Direct(_) => author,
    }
}

/// What a result shows: the text, or the media line (kind, file name, size, caption).
fn body(record: &MessageRecord) -> String {
    match &record.media {
        Some(media) => tidings_client::media::describe(media),
        None => record.text.clone(),
    }
}
