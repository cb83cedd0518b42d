//! Chatting through the page: an account created or unlocked with the passphrase, contact
//! cards exchanged through the page's form, messages typed into the page and sent by the CLI
//! user, and what both sides then show, counted.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tidings_client::{Client, Direction, MessageStatus};

use super::{
    POLL_EVERY, SETTLE_TIMEOUT,
    page::{PageMessage, PageUser},
};
use crate::scenario::users;

/// Every browser user's passphrase.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The CLI user's contact name in every page.
pub const CLI_NAME: &str = "cli";

/// How long an account may take to be created or unlocked (Argon2id, registration).
const ENTER_TIMEOUT: Duration = Duration::from_secs(60);

/// Counts over every exchange, both directions.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub sent: usize,
    pub accepted: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub out_of_order: usize,
}

impl Counts {
    /// Adds one direction: `expected` texts sent in order, `accepted` of them by the relay,
    /// and the texts the recipient shows (with the same tag, in the order shown).
    pub fn add(&mut self, expected: &[String], accepted: usize, shown: &[String]) {
        self.sent += expected.len();
        self.accepted += accepted;
        let mut seen = std::collections::HashSet::new();
        let mut last_position = None;
        for text in shown {
            let Some(position) = expected.iter().position(|wanted| wanted == text) else {
                continue;
            };
            if !seen.insert(position) {
                self.duplicates += 1;
                continue;
            }
            if last_position.is_some_and(|last| position < last) {
                self.out_of_order += 1;
            }
            last_position = Some(position);
        }
        self.delivered += seen.len();
        self.lost += expected.len() - seen.len();
    }
}

/// Creates the page's account (the welcome form) and waits for the chat list and a
/// connected session.
pub async fn create_account(user: &PageUser) -> anyhow::Result<()> {
    user.wait_for_state(&["welcome"], ENTER_TIMEOUT).await?;
    user.fill("new-passphrase", PASSPHRASE).await?;
    user.click("create", None).await?;
    user.wait_for_state(&["ready"], ENTER_TIMEOUT).await?;
    user.wait_for_link(&["connected"], ENTER_TIMEOUT).await
}

/// Unlocks the page's stored account (the unlock form), waits for the chat list and a
/// connected session, and opens the chat with the CLI user.
pub async fn unlock(user: &PageUser) -> anyhow::Result<()> {
    user.wait_for_state(&["locked"], ENTER_TIMEOUT).await?;
    user.fill("passphrase", PASSPHRASE).await?;
    user.click("unlock", None).await?;
    user.wait_for_state(&["ready"], ENTER_TIMEOUT).await?;
    user.wait_for_link(&["connected"], ENTER_TIMEOUT).await?;
    open_chat(user).await
}

/// Opens the chat with the CLI user (once the chat list shows it).
pub async fn open_chat(user: &PageUser) -> anyhow::Result<()> {
    open_chat_named(user, CLI_NAME).await
}

/// Opens the chat `name` (a contact or a group) once the chat list shows it.
pub async fn open_chat_named(user: &PageUser, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + ENTER_TIMEOUT;
    while user.click("chat", Some(name)).await.is_err() {
        if Instant::now() >= deadline {
            bail!("{}'s chat list never showed {name}", user.name);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(())
}

/// The page shows its card; the CLI adds it as `user.name`; the page adds the CLI's card
/// through its form and opens the chat.
pub async fn exchange_cards(user: &PageUser, cli: &Client) -> anyhow::Result<()> {
    let card = user
        .value("my-card")
        .await?
        .context("the page shows no contact card")?;
    let card = card
        .trim()
        .parse()
        .with_context(|| format!("{}'s page shows no valid card: {card:?}", user.name))?;
    cli.add_contact(&user.name, &card)?;
    user.fill("contact-name", CLI_NAME).await?;
    user.fill("contact-card", &cli.card(None)?.to_string())
        .await?;
    user.click("add-contact", None).await?;
    open_chat(user).await
}

/// Types `texts` into the open chat one by one (each shown before the next).
pub async fn type_messages(user: &PageUser, texts: &[String]) -> anyhow::Result<()> {
    for text in texts {
        user.fill("compose", text).await?;
        user.click("send", None).await?;
        let deadline = Instant::now() + ENTER_TIMEOUT;
        while !user
            .messages()
            .await?
            .iter()
            .any(|shown| &shown.text == text)
        {
            if Instant::now() >= deadline {
                bail!(
                    "{}'s page never showed {text:?} after sending it",
                    user.name
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
    Ok(())
}

/// The texts `tag:from>to#k` for k in 1..=count.
pub fn texts(tag: &str, from: &str, to: &str, count: usize) -> Vec<String> {
    (1..=count)
        .map(|k| format!("{tag}:{from}>{to}#{k}"))
        .collect()
}

/// Waits until the page and the CLI show every one of `from_page` and `from_cli`, the
/// page's ticked delivered or read and the CLI's read by the page (or time runs out), then
/// adds both directions to `counts`. Returns whether every tick arrived.
pub async fn settle(
    user: &PageUser,
    cli: &Client,
    from_page: &[String],
    from_cli: &[String],
    counts: &mut Counts,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let page = user.messages().await?;
        let history = cli.history(&user.name)?;
        let page_ticked = from_page.iter().all(|text| {
            page.iter().any(|shown| {
                &shown.text == text
                    && shown.outgoing
                    && matches!(shown.status.as_str(), "delivered" | "read")
            })
        });
        let cli_got = from_page.iter().all(|text| {
            history
                .iter()
                .any(|record| &record.text == text && record.direction == Direction::Incoming)
        });
        let page_got = from_cli.iter().all(|text| {
            page.iter()
                .any(|shown| &shown.text == text && !shown.outgoing)
        });
        let cli_read = from_cli.iter().all(|text| {
            history
                .iter()
                .any(|record| &record.text == text && record.status == MessageStatus::Read)
        });
        let done = page_ticked && cli_got && page_got && cli_read;
        if done || Instant::now() >= deadline {
            count(&page, &history, from_page, from_cli, counts);
            return Ok(done);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

fn count(
    page: &[PageMessage],
    history: &[tidings_client::MessageRecord],
    from_page: &[String],
    from_cli: &[String],
    counts: &mut Counts,
) {
    let accepted_by_page = page
        .iter()
        .filter(|shown| shown.outgoing && from_page.contains(&shown.text))
        .filter(|shown| matches!(shown.status.as_str(), "sent" | "delivered" | "read"))
        .count();
    let cli_shows: Vec<String> = history
        .iter()
        .filter(|record| record.direction == Direction::Incoming)
        .map(|record| record.text.clone())
        .collect();
    counts.add(from_page, accepted_by_page, &cli_shows);
    let accepted_by_cli = history
        .iter()
        .filter(|record| record.direction == Direction::Outgoing && from_cli.contains(&record.text))
        .filter(|record| {
            matches!(
                record.status,
                MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
            )
        })
        .count();
    let page_shows: Vec<String> = page
        .iter()
        .filter(|shown| !shown.outgoing)
        .map(|shown| shown.text.clone())
        .collect();
    counts.add(from_cli, accepted_by_cli, &page_shows);
}

/// The CLI user sends `texts` to `to` in order (and until its relay took them all).
pub async fn cli_sends(cli: &Client, to: &str, texts: &[String]) {
    let list = texts
        .iter()
        .map(|text| (to.to_string(), text.clone()))
        .collect();
    users::send(cli.clone(), list).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_find_loss_duplicates_and_reordering() {
        let expected = texts("t", "a", "b", 4);
        let mut counts = Counts::default();
        let shown = vec![
            expected[1].clone(),
            expected[0].clone(),
            expected[1].clone(),
            "unrelated".to_string(),
        ];
        counts.add(&expected, 4, &shown);
        assert_eq!(
            (
                counts.sent,
                counts.delivered,
                counts.lost,
                counts.duplicates,
                counts.out_of_order
            ),
            (4, 2, 2, 1, 1)
        );
        let mut clean = Counts::default();
        clean.add(&expected, 4, &expected);
        assert_eq!(
            (clean.lost, clean.duplicates, clean.out_of_order),
            (0, 0, 0)
        );
    }
}
