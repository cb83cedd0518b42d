//! `send --file`, `group send --file`, `media save`, `forward`, with progress bars.

use std::{io::IsTerminal, path::Path};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tidings_client::{Client, MessageRecord, MessageStatus, Progress, media::human_size};
use tidings_protocol::EnvelopeId;

use super::format;

/// A progress bar on stderr (size, rate, ETA), hidden when stdout is not a terminal.
fn bar(what: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// The progress callback that moves `bar` (saying so while the home relay fetches the file
/// from the relay that holds it).
fn follow(bar: &ProgressBar) -> impl FnMut(Progress) + Send + use<> {
    let bar = bar.clone();
    let what = bar.message();
    let mut fetching = false;
    move |progress: Progress| {
        if progress.relay_fetching != fetching {
            fetching = progress.relay_fetching;
            let message = if fetching {
                format!("{what} (your relay fetches it first)")
            } else {
                what.clone()
            };
            bar.set_message(message);
            bar.reset();
        }
        bar.set_length(progress.total);
        bar.set_position(progress.done);
    }
}

fn message_id(text: &str) -> anyhow::Result<EnvelopeId> {
    text.trim_start_matches('#')
        .parse()
        .ok()
        .with_context(|| format!("{text:?} is not a message id (the #ID `history` shows)"))
}

/// Sends a file to a contact or group.
pub async fn send_file(
    client: &Client,
    name: &str,
    path: &Path,
    caption: Option<&str>,
) -> anyhow::Result<()> {
    let mut session = client.connect().await?;
    let bar = bar("upload");
    let sent = session.send_file(name, path, caption, follow(&bar)).await;
    bar.finish_and_clear();
    let sent = sent?;
    session.close().await;
    if !sent.uploaded {
        println!("(already uploaded before: nothing sent again)");
    }
    report(name, &sent.record)
}

/// Forwards a media message to a contact or group, without uploading it again.
pub async fn forward(client: &Client, id: &str, name: &str) -> anyhow::Result<()> {
    let id = message_id(id)?;
    let mut session = client.connect().await?;
    let record = session.forward(id, name).await?;
    session.close().await;
    report(name, &record)
}

/// Downloads, checks and decrypts a media message's file.
pub async fn save(client: &Client, id: &str, path: Option<&Path>) -> anyhow::Result<()> {
    let id = message_id(id)?;
    let path = path.unwrap_or(Path::new("."));
    let bar = bar("download");
    let saved = client.save_media(id, path, follow(&bar)).await;
    bar.finish_and_clear();
    let saved = saved?;
    let size = std::fs::metadata(&saved)
        .map(|meta| meta.len())
        .unwrap_or(0);
    println!("saved {} ({})", saved.display(), human_size(size));
    Ok(())
}

fn report(name: &str, record: &MessageRecord) -> anyhow::Result<()> {
    let line = format::body(record);
    match &record.status {
        MessageStatus::Failed(reason) => {
            anyhow::bail!("✗ not sent to {name}: {}", format::printable(reason))
        }
        MessageStatus::Pending => println!(
            "… queued for {name}: {}; it will be sent later",
            format::printable(&line)
        ),
        status => println!(
            "{} sent to {name}: {}",
            format::ticks(status),
            format::printable(&line)
        ),
    }
    Ok(())
}
