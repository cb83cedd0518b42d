//! A browser user of the scenario: one headless browser on its own profile, with the
//! page's contract (`data-testid`s, `body[data-state]`) read through WebDriver scripts.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::webdriver::{Browser, ChromeDriver};

/// How often a waiting scenario looks at the page again.
const POLL_EVERY: Duration = Duration::from_millis(200);

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

    /// Runs an async script in the page (see [`Browser::execute_async`]).
    pub async fn run(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.browser()?.execute_async(script, args).await
    }
}
