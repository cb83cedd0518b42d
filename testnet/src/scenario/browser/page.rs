//! A browser user of the scenario: one headless browser on its own profile, with the
//! page's contract (`data-testid`s, `body[data-state]`) read through WebDriver scripts.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::webdriver::{Browser, ChromeDriver};

/// How often a waiting scenario looks at the page again.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// A message as the page shows it in the open chat.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PageMessage {
    /// pending, sent, delivered, read (ours) or received, read (theirs).
    pub status: String,
    /// Whether we sent it.
    pub outgoing: bool,
    /// Its text.
    pub text: String,
}

/// A person using the page in one browser profile.
pub struct PageUser {
    /// Name in reports.
    pub name: String,
    /// The page this user opens.
    pub url: String,
    /// The browser profile (kept across closing and reopening the browser).
    profile: PathBuf,
    browser: Option<Browser>,
}

impl PageUser {
    /// A user of the page at `url`, with the browser profile in `profile`.
    pub fn new(name: &str, url: &str, profile: &Path) -> PageUser {
        PageUser {
            name: name.into(),
            url: url.into(),
            profile: profile.to_path_buf(),
            browser: None,
        }
    }

    /// Opens the browser (on this user's profile) and loads the page.
    pub async fn open(&mut self, driver: &ChromeDriver) -> anyhow::Result<()> {
        let browser = driver.open(&self.profile).await?;
        browser
            .navigate(&self.url)
            .await
            .with_context(|| format!("{} loading {}", self.name, self.url))?;
        self.browser = Some(browser);
        Ok(())
    }

    /// Closes the browser; its profile stays.
    pub async fn close(&mut self) -> anyhow::Result<()> {
        if let Some(browser) = self.browser.take() {
            browser.close().await?;
        }
        Ok(())
    }

    /// The open browser.
    pub fn browser(&self) -> anyhow::Result<&Browser> {
        self.browser
            .as_ref()
            .with_context(|| format!("{}'s browser is closed", self.name))
    }

    /// The page's `body[data-state]` ("" before the page's script ran).
    pub async fn state(&self) -> anyhow::Result<String> {
        let value = self
            .browser()?
            .execute(
                "return document.body ? (document.body.dataset.state || '') : '';",
                json!([]),
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }

    /// The text of the element with `data-testid` `id`, if there is one.
    pub async fn text(&self, id: &str) -> anyhow::Result<Option<String>> {
        let value = self
            .browser()?
            .execute(
                "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);\
                 return e ? e.textContent : null;",
                json!([id]),
            )
            .await?;
        Ok(value.as_str().map(str::to_string))
    }

    /// The page's own time from navigation start to its chat list (`body[data-ready-ms]`),
    /// 0 if it never got there.
    pub async fn page_ready_ms(&self) -> anyhow::Result<f64> {
        let value = self
            .browser()?
            .execute(
                "return Number(document.body.dataset.readyMs || 0);",
                json!([]),
            )
            .await?;
        Ok(value.as_f64().unwrap_or(0.0))
    }

    /// The value of the field with `data-testid` `id`, if there is one.
    pub async fn value(&self, id: &str) -> anyhow::Result<Option<String>> {
        let value = self
            .browser()?
            .execute(
                "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);\
                 return e ? e.value : null;",
                json!([id]),
            )
            .await?;
        Ok(value.as_str().map(str::to_string))
    }

    /// Waits until the page's state is one of `wanted`, and returns it; a `failed` state
    /// (or `patience` running out) is an error naming what the page shows.
    pub async fn wait_for_state(
        &self,
        wanted: &[&str],
        patience: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + patience;
        loop {
            let state = self.state().await?;
            if wanted.contains(&state.as_str()) {
                return Ok(state);
            }
            if state == "failed" || Instant::now() >= deadline {
                let status = self.text("status").await?.unwrap_or_default();
                bail!(
                    "{}'s page is {state:?}, not {wanted:?} (it shows: {status})",
                    self.name
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The page's `body[data-link]`: the session's state ("connected", ...).
    pub async fn link(&self) -> anyhow::Result<String> {
        let value = self
            .browser()?
            .execute(
                "return document.body ? (document.body.dataset.link || '') : '';",
                json!([]),
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }

    /// Waits until the session's state is one of `wanted`.
    pub async fn wait_for_link(&self, wanted: &[&str], patience: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            let link = self.link().await?;
            if wanted.contains(&link.as_str()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let status = self.text("status").await?.unwrap_or_default();
                bail!(
                    "{}'s session is {link:?}, not {wanted:?} ({status})",
                    self.name
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Types `value` into the field with `data-testid` `id`.
    pub async fn fill(&self, id: &str, value: &str) -> anyhow::Result<()> {
        let found = self
            .browser()?
            .execute(
                "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);\
                 if (!e) { return false; }\
                 e.value = arguments[1];\
                 e.dispatchEvent(new Event('input', { bubbles: true }));\
                 return true;",
                json!([id, value]),
            )
            .await?;
        ensure!(
            found == Value::Bool(true),
            "{}'s page has no {id:?} field",
            self.name
        );
        Ok(())
    }

    /// Clicks the element with `data-testid` `id` (and, if given, `data-name` `name`).
    pub async fn click(&self, id: &str, name: Option<&str>) -> anyhow::Result<()> {
        let found = self
            .browser()?
            .execute(
                "const name = arguments[1];\
                 const selector = `[data-testid=\"${arguments[0]}\"]` +\
                   (name === null ? '' : `[data-name=\"${CSS.escape(name)}\"]`);\
                 const e = document.querySelector(selector);\
                 if (!e) { return false; }\
                 e.click();\
                 return true;",
                json!([id, name]),
            )
            .await?;
        ensure!(
            found == Value::Bool(true),
            "{}'s page has no {id:?} {name:?} to click",
            self.name
        );
        Ok(())
    }

    /// The messages of the open chat, as the page shows them.
    pub async fn messages(&self) -> anyhow::Result<Vec<PageMessage>> {
        let value = self
            .browser()?
            .execute(
                "return Array.from(document.querySelectorAll('[data-testid=\"message\"]'))\
                   .map((e) => ({ status: e.dataset.status,\
                     outgoing: e.classList.contains('outgoing'),\
                     text: e.querySelector('[data-testid=\"message-text\"]').textContent }));",
                json!([]),
            )
            .await?;
        Ok(serde_json::from_value(value)?)
    }

    /// The texts of the messages the open chat shows as received, in order.
    pub async fn incoming_texts(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .messages()
            .await?
            .into_iter()
            .filter(|shown| !shown.outgoing)
            .map(|shown| shown.text)
            .collect())
    }

    /// Runs an async script in the page (see [`Browser::execute_async`]).
    pub async fn run(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.browser()?.execute_async(script, args).await
    }
}
