//! The page's social side: a profile name set in the first page is seen by the CLI user and
//! the second page; typing from the CLI and from the second page is seen as "typing…"; the
//! CLI user shows as online; a status posted in the page is seen by the CLI user (and in the
//! second page's Status panel); a search in the page finds an earlier message.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tidings_client::{Client, status::StatusClock};

use super::{
    chat::{self, CLI_NAME},
    page::PageUser,
    report::Check,
};
use crate::scenario::users;

/// The profile name the first page sets.
const PROFILE_NAME: &str = "Alice of the first page";

/// The status the first page posts.
const STATUS_TEXT: &str = "social: a status from the first page";

/// How long what one side did may take to show at the other.
const SHOW_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the scenario looks again while waiting.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// How often the second page's Status panel is refreshed while waiting for a status.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// While waiting for "typing…", the CLI says it types again this often (a notice sent
/// before the page watched would otherwise be the only one).
const TYPING_AGAIN: Duration = Duration::from_secs(2);

/// Times `step`: passed if it returned Ok(()), with the error as the detail otherwise.
async fn check(
    name: &'static str,
    step: impl std::future::Future<Output = anyhow::Result<()>>,
) -> Check {
    let started = Instant::now();
    let outcome = step.await;
    Check {
        name,
        passed: outcome.is_ok(),
        ms: started.elapsed().as_secs_f64() * 1000.0,
        detail: outcome
            .err()
            .map(|error| format!("{error:#}"))
            .unwrap_or_default(),
    }
}

/// Runs `script` in `user`'s page until it returns `true` (or `SHOW_TIMEOUT` runs out: an
/// error saying `what` never showed, with the script's last answer).
async fn wait_until(user: &PageUser, what: &str, script: &str, args: Value) -> anyhow::Result<()> {
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let got = user.browser()?.execute(script, args.clone()).await?;
        if got == Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{}'s page never showed {what} (it showed {got})", user.name);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The text of `data-testid` `id` equals `arguments[0]`.
const TEXT_IS: &str = "const e = document.querySelector(`[data-testid=\"${arguments[1]}\"]`);\
     return e && e.textContent === arguments[0] ? true : (e ? e.textContent : null);";

/// The social checks; the ones with a second page only if there is one.
pub async fn social(pages: &[PageUser], cli: &Client) -> Vec<Check> {
    let Some(first) = pages.first() else {
        return Vec::new();
    };
    let second = pages.get(1);
    let mut checks = Vec::new();
    checks.push(check("profile_seen", profile_seen(first, second, cli)).await);
    checks.push(check("presence_online", presence_online(first)).await);
    checks.push(check("typing_from_cli", typing_from_cli(first, cli)).await);
    if let Some(second) = second {
        checks.push(check("typing_from_page", typing_from_page(first, second)).await);
    }
    checks.push(check("status_seen", status_seen(first, second, cli)).await);
    checks.push(check("search_finds", search_finds(first)).await);
    checks
}

/// The two pages add each other's cards through their forms.
async fn pages_become_contacts(first: &PageUser, second: &PageUser) -> anyhow::Result<()> {
    for (user, other) in [(first, second), (second, first)] {
        let card = other
            .value("my-card")
            .await?
            .context("a page shows no contact card")?;
        user.fill("contact-name", &other.name).await?;
        user.fill("contact-card", &card).await?;
        user.click("add-contact", None).await?;
        chat::open_chat_named(user, &other.name).await?;
    }
    Ok(())
}

/// The first page sets its profile name; the CLI user's profile of it and the second
/// page's chat list show it.
async fn profile_seen(
    first: &PageUser,
    second: Option<&PageUser>,
    cli: &Client,
) -> anyhow::Result<()> {
    if let Some(second) = second {
        pages_become_contacts(first, second).await?;
    }
    first.fill("profile-name", PROFILE_NAME).await?;
    first
        .fill("profile-about", "set in the browser scenario")
        .await?;
    first.click("save-profile", None).await?;
    wait_until(
        first,
        "its profile saved",
        "return document.getElementById('profile').dataset.version !== undefined;",
        json!([]),
    )
    .await?;
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let seen = cli.profile(&first.name).await?.map(|profile| profile.name);
        if seen.as_deref() == Some(PROFILE_NAME) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the CLI user's profile of {} is {seen:?}",
            first.name
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
    if let Some(second) = second {
        wait_until(
            second,
            &format!("{}'s profile name in its chat list", first.name),
            "const b = document.querySelector(`[data-testid=\"chat\"][data-name=\"${CSS.escape(arguments[0])}\"]`);\
             const l = b && b.querySelector('[data-testid=\"chat-profile-name\"]');\
             return l && l.textContent === `(${arguments[1]})` ? true : (l ? l.textContent : null);",
            json!([first.name, PROFILE_NAME]),
        )
        .await?;
    }
    Ok(())
}

/// The first page's chat with the CLI user (whose session is up) says "online".
async fn presence_online(first: &PageUser) -> anyhow::Result<()> {
    chat::open_chat(first).await?;
    wait_until(
        first,
        "the CLI user online",
        TEXT_IS,
        json!(["online", "chat-presence"]),
    )
    .await
}

/// The CLI user types to the first page: its chat header says "typing…", and no longer
/// once the CLI user stops.
async fn typing_from_cli(first: &PageUser, cli: &Client) -> anyhow::Result<()> {
    chat::open_chat(first).await?;
    let session = users::connect(cli).await;
    let deadline = Instant::now() + SHOW_TIMEOUT;
    let shown = loop {
        session
            .send_typing(&first.name, true)
            .await
            .context("the CLI user's typing notice")?;
        let again = Instant::now() + TYPING_AGAIN;
        let mut shown = false;
        while Instant::now() < again && !shown {
            shown = first.text("chat-typing").await?.as_deref() == Some("typing…");
            tokio::time::sleep(POLL_EVERY).await;
        }
        if shown || Instant::now() >= deadline {
            break shown;
        }
    };
    let stopped = session.send_typing(&first.name, false).await;
    session.close().await;
    ensure!(shown, "{}'s page never showed \"typing…\"", first.name);
    stopped.context("the CLI user's typing stopped notice")?;
    wait_until(first, "typing stopped", TEXT_IS, json!(["", "chat-typing"])).await
}

/// The second page types to the first: the first page's chat with it says "typing…"; the
/// line sent, it no longer does and the message is there.
async fn typing_from_page(first: &PageUser, second: &PageUser) -> anyhow::Result<()> {
    chat::open_chat_named(first, &second.name).await?;
    chat::open_chat_named(second, &first.name).await?;
    let text = format!("social:{}>{}#typed", second.name, first.name);
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        // Each input event is a key; the page sends "typing" at most every few seconds.
        second.fill("compose", &text[..text.len() / 2]).await?;
        if first.text("chat-typing").await?.as_deref() == Some("typing…") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{}'s page never showed \"typing…\" while {} typed",
            first.name,
            second.name
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
    chat::type_messages(second, std::slice::from_ref(&text)).await?;
    wait_until(
        first,
        "typing stopped once the line came",
        TEXT_IS,
        json!(["", "chat-typing"]),
    )
    .await?;
    wait_until(
        first,
        &format!("{text:?}"),
        "return Array.from(document.querySelectorAll('[data-testid=\"message-text\"]'))\
           .some((e) => e.textContent === arguments[0]);",
        json!([text]),
    )
    .await
}

/// The first page posts a status: the CLI user views it (and the page then counts one
/// viewer), the second page's Status panel shows it.
async fn status_seen(
    first: &PageUser,
    second: Option<&PageUser>,
    cli: &Client,
) -> anyhow::Result<()> {
    first.fill("status-text", STATUS_TEXT).await?;
    first.click("post-status", None).await?;
    let mine = "return Array.from(document.querySelectorAll('[data-testid=\"my-status\"]'))\
         .some((e) => e.querySelector('[data-testid=\"status-text\"]').textContent === arguments[0]);";
    wait_until(first, "its own status", mine, json!([STATUS_TEXT])).await?;
    let clock = StatusClock::system();
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let shown = cli.view_statuses(&clock, &first.name).await?;
        if shown.iter().any(|status| status.text == STATUS_TEXT) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the CLI user never saw {}'s status (it holds {:?})",
            first.name,
            shown.iter().map(|status| &status.text).collect::<Vec<_>>()
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
    if let Some(second) = second {
        let theirs = "return Array.from(document.querySelectorAll('[data-testid=\"status-item\"]'))\
             .some((e) => e.dataset.poster === arguments[1]\
               && e.querySelector('[data-testid=\"status-text\"]').textContent === arguments[0]);";
        let deadline = Instant::now() + SHOW_TIMEOUT;
        loop {
            // Each refresh asks the relay: one at a time, not on every look.
            second.click("refresh-statuses", None).await?;
            tokio::time::sleep(REFRESH_EVERY).await;
            let args = json!([STATUS_TEXT, first.name]);
            if second.browser()?.execute(theirs, args).await? == Value::Bool(true) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{}'s Status panel never showed {}'s status",
                second.name,
                first.name
            );
        }
    }
    Ok(())
}

/// A search in the first page finds the CLI user's first message of the run, in the chat
/// with the CLI user; clicking the result opens that chat.
async fn search_finds(first: &PageUser) -> anyhow::Result<()> {
    let wanted = chat::texts("chat", CLI_NAME, &first.name, 1).remove(0);
    first.fill("search-query", &wanted).await?;
    first.click("search", None).await?;
    wait_until(
        first,
        &format!("{wanted:?} among the search results"),
        "return Array.from(document.querySelectorAll('[data-testid=\"search-result\"]'))\
         .some((e) => e.dataset.chat === arguments[1]\
           && e.querySelector('[data-testid=\"search-snippet\"]').textContent === arguments[0]);",
        json!([wanted, CLI_NAME]),
    )
    .await?;
    chat::open_chat_named(first, &first_other_chat(first).await?).await?;
    first
        .browser()?
        .execute(
            "const r = Array.from(document.querySelectorAll('[data-testid=\"search-result\"]'))\
               .find((e) => e.querySelector('[data-testid=\"search-snippet\"]').textContent === arguments[0]);\
             r.click(); return true;",
            json!([wanted]),
        )
        .await?;
    wait_until(
        first,
        "the result's chat opened",
        TEXT_IS,
        json!([CLI_NAME, "chat-title"]),
    )
    .await
}

/// A chat of `user`'s other than the CLI user's (to leave it before clicking a result).
async fn first_other_chat(user: &PageUser) -> anyhow::Result<String> {
    let names = user
        .browser()?
        .execute(
            "return Array.from(document.querySelectorAll('[data-testid=\"chat\"]'))\
               .map((e) => e.dataset.name);",
            json!([]),
        )
        .await?;
    let names: Vec<String> = serde_json::from_value(names)?;
    names
        .into_iter()
        .find(|name| name != CLI_NAME)
        .context("the page has no chat but the CLI user's")
}
