//! The scenario's steps once every page is ready: a reload, closing a browser and opening it
//! again on the same profile, and a relay killed with SIGKILL and restarted under a page.

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;

use super::{READY, READY_TIMEOUT, page::PageUser, relays::PageRelay, report::Check};
use crate::webdriver::ChromeDriver;

/// How long a page may take to notice that its relay is gone.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(30);

/// The page's state while its relay is unreachable.
const OFFLINE: &str = "offline";

/// Times `step`: passed if it returned Ok, with the error as the detail otherwise.
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

/// The page is reloaded and gets ready again.
pub async fn reload(user: &PageUser) -> Check {
    check("reload", async {
        user.browser()?.reload().await?;
        user.wait_for_state(&[READY], READY_TIMEOUT).await?;
        Ok(())
    })
    .await
}

/// A file in the page's origin-private file system (OPFS), written before the browser
/// closes and read after it opens again: the profile, and with it the device's storage,
/// must survive.
const OPFS_MARKER: &str = "scenario-marker.txt";

/// The browser is closed and opened again on the same profile; the page gets ready again
/// and finds in OPFS what it wrote there before.
pub async fn reopen(user: &mut PageUser, driver: &ChromeDriver) -> Check {
    check("close_and_reopen", async {
        let token = format!("{:016x}", rand::random::<u64>());
        user.run(
            "const root = await navigator.storage.getDirectory();\
             const file = await root.getFileHandle(arguments[0], { create: true });\
             const writable = await file.createWritable();\
             await writable.write(arguments[1]);\
             await writable.close();",
            json!([OPFS_MARKER, token]),
        )
        .await?;
        user.close().await?;
        user.open(driver).await?;
        user.wait_for_state(&[READY], READY_TIMEOUT).await?;
        let found = user
            .run(
                "const root = await navigator.storage.getDirectory();\
                 const file = await root.getFileHandle(arguments[0]);\
                 return await (await file.getFile()).text();",
                json!([OPFS_MARKER]),
            )
            .await?;
        ensure!(
            found.as_str() == Some(token.as_str()),
            "OPFS held {found} after the browser reopened, not {token:?}"
        );
        Ok(())
    })
    .await
}

/// The page's relay is killed with SIGKILL: the page must show it is offline; the relay is
/// restarted on the same ports and the page must connect again by itself.
pub async fn relay_restart(user: &PageUser, relay: &mut PageRelay) -> Check {
    check("relay_sigkill_restart", async {
        relay.process.kill9().await?;
        user.wait_for_state(&[OFFLINE], NOTICE_TIMEOUT).await?;
        relay.process.restart().await?;
        user.wait_for_state(&[READY], READY_TIMEOUT).await?;
        Ok(())
    })
    .await
}
