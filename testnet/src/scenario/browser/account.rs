//! Account steps through the pages: a fresh browser profile linked as a device of the CLI
//! user's account (a message to that account reaches both), a group made in browser 1's page
//! with browser 2 and the CLI user (one message from each, once and in order everywhere), a
//! registration refused because the relay is gone (the page keeps no half device) and a
//! browser closed mid-registration (the next unlock registers the device).

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tidings_client::{Client, Direction};
use tidings_protocol::LinkCode;

use super::{
    POLL_EVERY, SETTLE_TIMEOUT,
    chat::{self, CLI_NAME, Counts, PASSPHRASE},
    page::PageUser,
    relays::PageRelay,
    report::Check,
    steps::{DEVICE_DIR, PER_STEP, check},
};
use crate::{scenario::users, webdriver::ChromeDriver};

/// The group browser 1 makes in its page.
const GROUP: &str = "page-crew";

/// How long a page's session may take to act on a notice that a contact's devices changed.
const NOTICE_PAUSE: Duration = Duration::from_secs(1);

/// Runs the account steps after the others (`pages`: browser 1 and 2, chatting with `cli`);
/// the last relay is killed and restarted in the last step.
pub async fn run(
    pages: &[PageUser],
    cli: &Client,
    driver: &ChromeDriver,
    relays: &mut [PageRelay],
    work: &std::path::Path,
    counts: &mut Counts,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let (Some(first), Some(second)) = (pages.first(), pages.get(1)) else {
        return checks;
    };
    let mut linked = PageUser::new("linked", &relays[0].page_url, &work.join("linked"));
    checks.push(
        check(
            "link_browser_device",
            link_device(&mut linked, driver, first, cli, counts),
        )
        .await,
    );
    checks.push(check("page_group", page_group(first, second, cli, counts)).await);
    let _ = linked.close().await;
    if let Some(relay) = relays.last_mut() {
        let mut refused = PageUser::new("refused", &relay.page_url, &work.join("refused"));
        checks.push(
            check(
                "registration_refused",
                registration_refused(&mut refused, driver, relay),
            )
            .await,
        );
        checks.push(
            check(
                "closed_mid_registration",
                closed_mid_registration(&mut refused, driver, relay),
            )
            .await,
        );
        let _ = refused.close().await;
    }
    checks
}

/// Polls `found` until it gives a value or `SETTLE_TIMEOUT` passes (then an error saying
/// `what`).
async fn wait_for<T, F, Fut>(what: &str, mut found: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        if let Some(value) = found().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("{what} did not happen in {SETTLE_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// As [`wait_for`], for a condition.
async fn wait_until<F, Fut>(what: &str, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    wait_for(what, || {
        let ready = ready();
        async move { Ok(ready.await?.then_some(())) }
    })
    .await
}

/// A fresh profile on the CLI user's home relay's page links itself as a device of the CLI
/// user's account (the page shows the code, the CLI approves it); then browser 1 writes to
/// that account and both the CLI and the linked page show every message once, in order.
async fn link_device(
    linked: &mut PageUser,
    driver: &ChromeDriver,
    sender: &PageUser,
    cli: &Client,
    counts: &mut Counts,
) -> anyhow::Result<bool> {
    linked.open(driver).await?;
    linked.wait_for_state(&["welcome"], SETTLE_TIMEOUT).await?;
    linked.fill("link-passphrase", PASSPHRASE).await?;
    linked.click("link-start", None).await?;
    linked.wait_for_state(&["linking"], SETTLE_TIMEOUT).await?;
    let page: &PageUser = linked;
    let code = wait_for("the page showing a link code", || async move {
        let code = page.value("link-code").await?.unwrap_or_default();
        Ok((!code.is_empty()).then_some(code))
    })
    .await?;
    let code: LinkCode = code
        .trim()
        .parse()
        .with_context(|| format!("the page shows no valid link code: {code:?}"))?;
    cli.approve_link(&code, Some("browser"))
        .await
        .context("the CLI approving the page")?;
    linked.wait_for_state(&["ready"], SETTLE_TIMEOUT).await?;
    linked.wait_for_link(&["connected"], SETTLE_TIMEOUT).await?;
    // Once the page published its keys: the new list's notices to contacts, the contacts and
    // recent history for the page go out with this flush.
    let mut session = users::connect(cli).await;
    session
        .flush()
        .await
        .context("the CLI flushing after approving")?;
    session.close().await;
    // The account's contacts reach the linked page by sync: browser 1 is among them.
    chat::open_chat_named(linked, &sender.name).await?;
    // Browser 1 heard of the new device in the same flush; give its session a moment.
    tokio::time::sleep(NOTICE_PAUSE).await;

    chat::open_chat(sender).await?;
    let texts = chat::texts("linked", &sender.name, CLI_NAME, PER_STEP);
    chat::type_messages(sender, &texts).await?;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let at_cli: Vec<String> = cli
            .history(&sender.name)?
            .into_iter()
            .filter(|record| record.direction == Direction::Incoming)
            .map(|record| record.text)
            .collect();
        let at_page = linked.incoming_texts().await?;
        let done = [&at_cli, &at_page]
            .iter()
            .all(|shown| texts.iter().all(|text| shown.contains(text)));
        if done || Instant::now() >= deadline {
            let ticked = sender
                .messages()
                .await?
                .iter()
                .filter(|shown| shown.outgoing && texts.contains(&shown.text))
                .filter(|shown| shown.status != "pending" && shown.status != "failed")
                .count();
            counts.add(&texts, ticked, &at_cli);
            counts.add(&texts, ticked, &at_page);
            return Ok(done);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Browser 1 adds browser 2's card, makes the group with the CLI user in its page and adds
/// browser 2 to it; one message from each member; each shows the others' once, in order.
async fn page_group(
    first: &PageUser,
    second: &PageUser,
    cli: &Client,
    counts: &mut Counts,
) -> anyhow::Result<bool> {
    let card = second
        .value("my-card")
        .await?
        .context("browser 2 shows no card")?;
    first.fill("contact-name", &second.name).await?;
    first.fill("contact-card", card.trim()).await?;
    first.click("add-contact", None).await?;
    wait_until("the group form offering the CLI user", || async {
        Ok(first.click("group-member", Some(CLI_NAME)).await.is_ok())
    })
    .await?;
    first.fill("group-name", GROUP).await?;
    first.click("create-group", None).await?;
    chat::open_chat_named(first, GROUP).await?;
    wait_until("the add-member form offering browser 2", || async {
        let found = first
            .run(
                "const form = document.querySelector('[data-testid=\"add-member-form\"]');\
                 const option = document.querySelector(\
                   `[data-testid=\"add-member-name\"] option[value=\"${CSS.escape(arguments[0])}\"]`);\
                 return Boolean(form && !form.hidden && option);",
                serde_json::json!([second.name]),
            )
            .await?;
        Ok(found == serde_json::Value::Bool(true))
    })
    .await?;
    first.fill("add-member-name", &second.name).await?;
    first.click("add-member", None).await?;
    let group = wait_for("the CLI user learning of the group", || async {
        Ok(cli.group_id(GROUP).ok())
    })
    .await?;
    // Browser 1, browser 2 and the CLI user: the CLI user sends to those it knows of.
    wait_until("the CLI user learning that browser 2 was added", || async {
        Ok(cli
            .group(&group)
            .is_ok_and(|signed| signed.descriptor.members.len() >= 3))
    })
    .await?;
    // Browser 2 is in the group once its page lists it (the addition reached it).
    chat::open_chat_named(second, GROUP).await?;

    let mut sent: Vec<(String, Vec<String>)> = Vec::new();
    for page in [first, second] {
        let texts = chat::texts(GROUP, &page.name, GROUP, 1);
        chat::type_messages(page, &texts).await?;
        sent.push((page.name.clone(), texts));
    }
    let from_cli = chat::texts(GROUP, CLI_NAME, GROUP, 1);
    let list = from_cli
        .iter()
        .map(|text| (group.to_string(), text.clone()))
        .collect();
    users::send(cli.clone(), list).await;
    sent.push((CLI_NAME.to_string(), from_cli));

    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut incoming: Vec<(String, Vec<String>)> = Vec::new();
        for page in [first, second] {
            let shown = page.incoming_texts().await?;
            incoming.push((page.name.clone(), shown));
        }
        let at_cli = cli
            .history(&group.to_string())?
            .into_iter()
            .filter(|record| record.direction == Direction::Incoming)
            .map(|record| record.text)
            .collect();
        incoming.push((CLI_NAME.to_string(), at_cli));
        let done = sent.iter().all(|(sender, texts)| {
            incoming
                .iter()
                .filter(|(member, _)| member != sender)
                .all(|(_, shown)| texts.iter().all(|text| shown.contains(text)))
        });
        if done || Instant::now() >= deadline {
            for (sender, texts) in &sent {
                for (_, shown) in incoming.iter().filter(|(member, _)| member != sender) {
                    counts.add(texts, texts.len(), shown);
                }
            }
            return Ok(done);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Whether the page's OPFS holds a device (its key file, written).
async fn holds_device(user: &PageUser) -> anyhow::Result<bool> {
    let held = user
        .run(
            "const root = await navigator.storage.getDirectory();\
             try {\
               const dir = await root.getDirectoryHandle(arguments[0]);\
               const file = await dir.getFileHandle(arguments[1]);\
               return (await file.getFile()).size > 0;\
             } catch (error) { return false; }",
            serde_json::json!([DEVICE_DIR, tidings_client::KEY_FILE]),
        )
        .await?;
    held.as_bool()
        .context("the page could not look into its storage")
}

/// A fresh profile loads the page, its relay is killed before it creates the account: the
/// page says so, keeps no device and stays at its first screen (the relay is restarted).
async fn registration_refused(
    user: &mut PageUser,
    driver: &ChromeDriver,
    relay: &mut PageRelay,
) -> anyhow::Result<bool> {
    user.open(driver).await?;
    user.wait_for_state(&["welcome"], SETTLE_TIMEOUT).await?;
    relay.process.kill9().await?;
    let refused = async {
        user.fill("new-passphrase", PASSPHRASE).await?;
        user.click("create", None).await?;
        wait_until("the page saying the registration failed", || async {
            let status = user.text("status").await?.unwrap_or_default();
            Ok(status.contains("nothing was kept"))
        })
        .await?;
        let state = user.state().await?;
        ensure!(
            state == "welcome",
            "the page is {state:?} after the failed registration"
        );
        ensure!(
            !holds_device(user).await?,
            "the page kept a device whose registration failed"
        );
        anyhow::Ok(true)
    }
    .await;
    relay.process.restart().await?;
    refused
}

/// Sends `signal` to the relay process.
fn signal(relay: &PageRelay, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
    let pid = i32::try_from(relay.process.pid()).context("the relay's pid")?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
        .with_context(|| format!("sending {signal} to the relay"))
}

/// The same profile creates its account again while its relay is stopped (SIGSTOP: the
/// registration hangs) and the browser is closed once the key file is saved; with the
/// relay going on (SIGCONT) the page reopens at its unlock screen, and unlocking registers
/// the device and reaches the chat list.
async fn closed_mid_registration(
    user: &mut PageUser,
    driver: &ChromeDriver,
    relay: &mut PageRelay,
) -> anyhow::Result<bool> {
    user.wait_for_state(&["welcome"], SETTLE_TIMEOUT).await?;
    signal(relay, nix::sys::signal::Signal::SIGSTOP)?;
    let closed = async {
        user.fill("new-passphrase", PASSPHRASE).await?;
        user.click("create", None).await?;
        wait_until("the page saving its key file", || holds_device(user)).await?;
        user.close().await
    }
    .await;
    signal(relay, nix::sys::signal::Signal::SIGCONT)?;
    closed?;
    user.open(driver).await?;
    chat_list_after_unlock(user).await?;
    holds_device(user).await
}

/// Unlocks the page's stored device and waits for the chat list and a connected session.
async fn chat_list_after_unlock(user: &PageUser) -> anyhow::Result<()> {
    user.wait_for_state(&["locked"], SETTLE_TIMEOUT).await?;
    user.fill("passphrase", PASSPHRASE).await?;
    user.click("unlock", None).await?;
    user.wait_for_state(&["ready"], SETTLE_TIMEOUT).await?;
    user.wait_for_link(&["connected"], SETTLE_TIMEOUT).await
}
