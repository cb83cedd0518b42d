//! A group chat through the pages: the CLI user makes a group of itself and every browser
//! user; each page finds it in its chat list and writes to it, the CLI user too; every
//! member must show every other member's messages once, in order, and the senders' ✓.

use std::time::Instant;

use anyhow::Context;
use tidings_client::{Client, Direction, MessageStatus};

use super::{
    POLL_EVERY, SETTLE_TIMEOUT,
    chat::{self, CLI_NAME, Counts},
    page::PageUser,
    report::Check,
    steps::PER_STEP,
};
use crate::scenario::users;

/// The group's name.
const GROUP: &str = "crew";

/// Runs the group step and counts each sender's messages at each other member.
pub async fn group_chat(pages: &[PageUser], cli: &Client, counts: &mut Counts) -> Check {
    let started = Instant::now();
    let outcome = run(pages, cli, counts).await;
    Check {
        name: "group_chat",
        passed: matches!(outcome, Ok(true)),
        ms: started.elapsed().as_secs_f64() * 1000.0,
        detail: match outcome {
            Ok(true) => String::new(),
            Ok(false) => "group messages or ticks missing when time ran out".into(),
            Err(error) => format!("{error:#}"),
        },
    }
}

async fn run(pages: &[PageUser], cli: &Client, counts: &mut Counts) -> anyhow::Result<bool> {
    let members: Vec<&str> = pages.iter().map(|page| page.name.as_str()).collect();
    let mut session = users::connect(cli).await;
    let group = session
        .create_group(GROUP, &members)
        .await
        .context("the CLI user creating the group")?;
    session.close().await;
    for page in pages {
        chat::open_chat_named(page, GROUP).await?;
    }
    let mut sent: Vec<(String, Vec<String>)> = Vec::new();
    for page in pages {
        let texts = chat::texts(GROUP, &page.name, GROUP, PER_STEP);
        chat::type_messages(page, &texts).await?;
        sent.push((page.name.clone(), texts));
    }
    let from_cli = chat::texts(GROUP, CLI_NAME, GROUP, PER_STEP);
    let list = from_cli
        .iter()
        .map(|text| (group.to_string(), text.clone()))
        .collect();
    users::send(cli.clone(), list).await;
    sent.push((CLI_NAME.to_string(), from_cli));

    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut shown: Vec<Shown> = Vec::new();
        for page in pages {
            let messages = page.messages().await?;
            let incoming = messages
                .iter()
                .filter(|m| !m.outgoing)
                .map(|m| m.text.clone())
                .collect();
            let outgoing = messages
                .iter()
                .filter(|m| m.outgoing)
                .map(|m| (m.text.clone(), m.status.clone()))
                .collect();
            shown.push(Shown {
                member: page.name.clone(),
                incoming,
                outgoing,
            });
        }
        let history = cli.history(&group.to_string())?;
        let incoming = history
            .iter()
            .filter(|record| record.direction == Direction::Incoming)
            .map(|record| record.text.clone())
            .collect();
        let outgoing = history
            .iter()
            .filter(|record| record.direction == Direction::Outgoing)
            .map(|record| (record.text.clone(), cli_tick(&record.status).to_string()))
            .collect();
        shown.push(Shown {
            member: CLI_NAME.to_string(),
            incoming,
            outgoing,
        });

        let everyone_has_all = sent.iter().all(|(sender, texts)| {
            shown
                .iter()
                .filter(|seen| &seen.member != sender)
                .all(|seen| texts.iter().all(|text| seen.incoming.contains(text)))
        });
        let all_ticked = shown.iter().all(|seen| {
            let mine = sent.iter().find(|(sender, _)| sender == &seen.member);
            mine.is_none_or(|(_, texts)| texts.iter().all(|text| seen.ticked(text)))
        });
        let done = everyone_has_all && all_ticked;
        if done || Instant::now() >= deadline {
            for (sender, texts) in &sent {
                let accepted = shown
                    .iter()
                    .find(|seen| &seen.member == sender)
                    .map(|seen| texts.iter().filter(|text| seen.ticked(text)).count())
                    .unwrap_or(0);
                for seen in shown.iter().filter(|seen| &seen.member != sender) {
                    // Each member's copy counts as one message sent (as in `scenario group`).
                    counts.add(texts, accepted, &seen.incoming);
                }
            }
            return Ok(done);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// What one member shows in the group's chat.
struct Shown {
    member: String,
    /// Others' messages, in the order shown.
    incoming: Vec<String>,
    /// Its own messages with their tick.
    outgoing: Vec<(String, String)>,
}

impl Shown {
    /// Whether its own message `text` is shown accepted by its relay (✓ or better).
    fn ticked(&self, text: &str) -> bool {
        self.outgoing
            .iter()
            .any(|(shown, tick)| shown == text && tick != "pending" && tick != "failed")
    }
}

/// The CLI's status of its own message, in the page's words.
fn cli_tick(status: &MessageStatus) -> &'static str {
    match status {
        MessageStatus::Pending => "pending",
        MessageStatus::Failed(_) => "failed",
        _ => "sent",
    }
}
