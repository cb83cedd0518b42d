//! The scenario's steps once the pages chat: a reload mid-chat, a browser closed while
//! messages arrive and opened again, and a relay killed with SIGKILL and restarted under a
//! page. Each step ends with an exchange both ways that must settle.

use std::time::{Duration, Instant};

use tidings_client::Client;

use super::{
    chat::{self, CLI_NAME, Counts},
    page::PageUser,
    relays::PageRelay,
    report::Check,
};
use crate::webdriver::ChromeDriver;

/// How long a page may take to notice that its relay is gone.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(30);

/// The page's OPFS directory and the files the device keeps there (web/src/device.rs).
pub(super) const DEVICE_DIR: &str = "tidings-device";
const DEVICE_FILES: [&str; 2] = [tidings_client::store::STORE_FILE, tidings_client::KEY_FILE];

/// Messages each way in each step.
pub const PER_STEP: usize = 3;

/// Times `step`: passed if it returned Ok(true), with the error as the detail otherwise.
pub(super) async fn check(
    name: &'static str,
    step: impl std::future::Future<Output = anyhow::Result<bool>>,
) -> Check {
    let started = Instant::now();
    let outcome = step.await;
    Check {
        name,
        passed: matches!(outcome, Ok(true)),
        ms: started.elapsed().as_secs_f64() * 1000.0,
        detail: match outcome {
            Ok(true) => String::new(),
            Ok(false) => "messages or ticks missing when time ran out".into(),
            Err(error) => format!("{error:#}"),
        },
    }
}

/// Messages both ways, `tag`ged, settled and counted.
pub async fn exchange(
    user: &PageUser,
    cli: &Client,
    tag: &str,
    counts: &mut Counts,
) -> anyhow::Result<bool> {
    let from_page = chat::texts(tag, &user.name, CLI_NAME, PER_STEP);
    let from_cli = chat::texts(tag, CLI_NAME, &user.name, PER_STEP);
    chat::type_messages(user, &from_page).await?;
    chat::cli_sends(cli, &user.name, &from_cli).await;
    chat::settle(user, cli, &from_page, &from_cli, counts).await
}

/// The first chat: messages both ways with ticks on both sides.
pub async fn first_chat(user: &PageUser, cli: &Client, counts: &mut Counts) -> Check {
    check("chat", exchange(user, cli, "chat", counts)).await
}

/// The page is reloaded mid-chat and unlocked (timed: a returning user's way to the chat
/// list), then shows what it showed and the chat goes on.
pub async fn reload(user: &PageUser, cli: &Client, counts: &mut Counts) -> Vec<Check> {
    let before = user.messages().await.map(|shown| shown.len());
    let unlocked = check("reload_to_chat_list", async {
        user.browser()?.reload().await?;
        chat::unlock(user).await?;
        Ok(true)
    })
    .await;
    let chat_goes_on = check("reload_mid_chat", async {
        let before = before?;
        let after = user.messages().await?.len();
        anyhow::ensure!(
            after == before,
            "the page showed {before} messages before the reload and {after} after"
        );
        exchange(user, cli, "reload", counts).await
    })
    .await;
    vec![unlocked, chat_goes_on]
}

/// The browser is closed while the CLI user sends; opened again on the same profile and
/// unlocked, the page shows every message once, in order.
pub async fn closed_while_sent(
    user: &mut PageUser,
    driver: &ChromeDriver,
    cli: &Client,
    counts: &mut Counts,
) -> Check {
    check("closed_while_messages_arrive", async {
        user.close().await?;
        let from_cli = chat::texts("closed", CLI_NAME, &user.name, PER_STEP);
        chat::cli_sends(cli, &user.name, &from_cli).await;
        user.open(driver).await?;
        chat::unlock(user).await?;
        let files = user
            .run(
                "const root = await navigator.storage.getDirectory();\
                 const dir = await root.getDirectoryHandle(arguments[0]);\
                 const names = [];\
                 for await (const name of dir.keys()) { names.push(name); }\
                 return names.sort();",
                serde_json::json!([DEVICE_DIR]),
            )
            .await?;
        let files: Vec<String> = serde_json::from_value(files)?;
        anyhow::ensure!(
            DEVICE_FILES
                .iter()
                .all(|name| files.iter().any(|file| file == name)),
            "the device's OPFS directory holds {files:?}, not {DEVICE_FILES:?}"
        );
        let from_page = chat::texts("closed", &user.name, CLI_NAME, PER_STEP);
        chat::type_messages(user, &from_page).await?;
        chat::settle(user, cli, &from_page, &from_cli, counts).await
    })
    .await
}

/// The page's relay is killed with SIGKILL: the page must show its session lost; the relay
/// is restarted on the same ports, the page reconnects by itself and the chat goes on.
pub async fn relay_restart(
    user: &PageUser,
    relay: &mut PageRelay,
    cli: &Client,
    counts: &mut Counts,
) -> Check {
    check("relay_sigkill_restart", async {
        relay.process.kill9().await?;
        // Between dials the page says "disconnected", while dialing "connecting".
        let noticed = user
            .wait_for_link(&["disconnected", "connecting"], NOTICE_TIMEOUT)
            .await;
        relay.process.restart().await?;
        noticed?;
        user.wait_for_link(&["connected"], NOTICE_TIMEOUT).await?;
        exchange(user, cli, "restart", counts).await
    })
    .await
}
