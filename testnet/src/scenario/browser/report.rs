//! The browser scenario's report: the federation scenario's counts plus one entry per
//! browser user and the page's size.

use serde::Serialize;

use crate::report::{Outcome, Report};

/// What one browser user did and measured.
#[derive(Debug, Clone, Serialize)]
pub struct BrowserSummary {
    /// The user's name in the run.
    pub user: String,
    /// The relay whose page it opened (1-based).
    pub relay: usize,
    /// From asking the browser to load the page to the page being ready, milliseconds.
    pub ready_ms: f64,
    /// The page's own clock from navigation start to its chat list (`performance.now()`),
    /// milliseconds: account creation for a new user, unlock for the last one reloaded.
    pub page_ready_ms: f64,
    /// The page's state when the run ended.
    pub state: String,
    /// What the page's status line said then.
    pub status: String,
}

/// One step of the run and whether the pages behaved.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was done ("reload", "reopen", "relay_restart", ...).
    pub name: &'static str,
    /// Whether the page got where it should.
    pub passed: bool,
    /// How long that took, milliseconds.
    pub ms: f64,
    /// What the page showed if it did not.
    pub detail: String,
}

/// The scenario's report.
#[derive(Debug, Clone, Serialize)]
pub struct BrowserReport {
    /// The common counts.
    #[serde(flatten)]
    pub report: Report,
    /// Each browser user.
    pub browsers: Vec<BrowserSummary>,
    /// The steps after the pages got ready (reload, close and reopen, relay restart).
    pub checks: Vec<Check>,
    /// Size of the page's wasm module as served, bytes.
    pub wasm_bytes: u64,
    /// Where the screenshot of the page was saved.
    pub screenshot: String,
}

impl BrowserReport {
    /// Whether messages held, every browser reached its ready state and every check passed.
    pub fn passed(&self) -> bool {
        self.report.passed()
            && self
                .browsers
                .iter()
                .all(|browser| browser.state == super::READY)
            && self.checks.iter().all(|check| check.passed)
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        self.report.print(false)?;
        for browser in &self.browsers {
            println!(
                "  {} on relay {}: ready in {:.0} ms (page clock {:.0} ms), {}: {}",
                browser.user,
                browser.relay,
                browser.ready_ms,
                browser.page_ready_ms,
                browser.state,
                browser.status
            );
        }
        for check in &self.checks {
            let verdict = if check.passed { "ok" } else { "FAILED" };
            println!(
                "  {}: {verdict} in {:.0} ms {}",
                check.name, check.ms, check.detail
            );
        }
        println!(
            "  wasm module {} KiB; screenshot {}",
            self.wasm_bytes / 1024,
            self.screenshot
        );
        println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        Ok(())
    }
}

impl Outcome for BrowserReport {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some(
            "the browser scenario found a page that did not get ready, or lost, duplicated or reordered messages",
        )
    }
}
