//! `scenario browser`: relays as processes (TCP, QUIC, WebSocket) serving the built page,
//! browser users in Debian's headless Chromium driven through WebDriver, and a CLI user.

mod account;
mod chat;
mod group;
mod media;
mod page;
mod relays;
mod report;
mod social;
mod steps;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use tidings_client::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::users;
use crate::{report::Percentiles, report::Report, webdriver::ChromeDriver};
use page::PageUser;
pub use report::BrowserReport;
use report::BrowserSummary;

/// How long a step's messages, ticks or page changes may take to show.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a step looks again while waiting.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// The page's state once it shows the chat list.
const READY: &str = "ready";

/// How long the CLI user's registration may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// The wasm module the built page must contain (wasm-bindgen's output name).
const WASM_FILE: &str = "tidings_web_bg.wasm";

/// Size of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// Relay processes; browser user `i` opens the page of relay `i % relays`.
    #[arg(long, default_value_t = 2)]
    pub relays: usize,
    /// Browser users.
    #[arg(long, default_value_t = 2)]
    pub browsers: usize,
    /// The built page (web/build.sh's output).
    #[arg(long, value_name = "DIR", default_value = "web/pkg")]
    pub page: PathBuf,
    /// Where to save the screenshot of the first browser's page (default: in the work dir).
    #[arg(long, value_name = "FILE")]
    pub screenshot: Option<PathBuf>,
    /// Seed of the run (reported; the workload is fixed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The built page's directory (absolute) and the size of its wasm module; an error saying
/// how to build it if it is missing.
fn built_page(dir: &Path) -> anyhow::Result<(PathBuf, u64)> {
    let wasm = dir.join(WASM_FILE);
    let (Ok(meta), true) = (std::fs::metadata(&wasm), dir.join("index.html").is_file()) else {
        bail!(
            "no built page in {} (index.html and {WASM_FILE}): run web/build.sh first \
             (README, \"Browser\"), or pass --page DIR",
            dir.display()
        );
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    Ok((dir, meta.len()))
}

/// Runs the scenario in `work`.
pub async fn run(work: &Path, params: Params) -> anyhow::Result<BrowserReport> {
    ensure!(params.relays >= 1, "at least one relay");
    ensure!(params.browsers >= 1, "at least one browser user");
    let started = Instant::now();
    let (page_dir, wasm_bytes) = built_page(&params.page)?;
    let driver = ChromeDriver::start(&work.join("chromedriver.log")).await?;
    let mut relays = relays::start(work, params.relays, &page_dir).await?;

    let cli = Client::init(&work.join("users").join(chat::CLI_NAME), None)?;
    tokio::time::timeout(
        REGISTER_TIMEOUT,
        cli.register(relays[0].process.addr.clone(), None),
    )
    .await
    .context("the CLI user's registration timed out")??;
    let stop = CancellationToken::new();
    let (_online, online) = watch::channel(true);
    let receiver = tokio::spawn(users::receive(cli.clone(), online, stop.clone()));

    let mut users = Vec::with_capacity(params.browsers);
    let mut browsers = Vec::with_capacity(params.browsers);
    for index in 0..params.browsers {
        let relay = index % relays.len();
        let name = format!("browser{}", index + 1);
        let mut user = PageUser::new(&name, &relays[relay].page_url, &work.join(&name));
        let opened = Instant::now();
        user.open(&driver).await?;
        chat::create_account(&user).await?;
        browsers.push(BrowserSummary {
            user: name,
            relay: relay + 1,
            ready_ms: opened.elapsed().as_secs_f64() * 1000.0,
            page_ready_ms: 0.0,
            state: String::new(),
            status: String::new(),
        });
        chat::exchange_cards(&user, &cli).await?;
        users.push(user);
    }

    let mut counts = chat::Counts::default();
    let mut checks = Vec::new();
    for user in &users {
        checks.push(steps::first_chat(user, &cli, &mut counts).await);
    }
    let screenshot = params
        .screenshot
        .clone()
        .unwrap_or_else(|| work.join("browser1.png"));
    if let Some(first) = users.first() {
        let png = first.browser()?.screenshot().await?;
        std::fs::write(&screenshot, png)
            .with_context(|| format!("saving the screenshot to {}", screenshot.display()))?;
        checks.extend(steps::reload(first, &cli, &mut counts).await);
    }
    if let Some(last) = users.last_mut() {
        checks.push(steps::closed_while_sent(last, &driver, &cli, &mut counts).await);
    }
    // The last user's home relay (users are spread round-robin).
    let home = (users.len() - 1) % relays.len();
    if let (Some(last), Some(relay)) = (users.last(), relays.get_mut(home)) {
        checks.push(steps::relay_restart(last, relay, &cli, &mut counts).await);
    }

    checks.push(group::group_chat(&users, &cli, &mut counts).await);
    checks.extend(account::run(&users, &cli, &driver, &mut relays, work, &mut counts).await);
    if let Some(first) = users.first() {
        checks.extend(media::media(first, &cli, work, params.seed).await);
    }
    checks.extend(social::social(&users, &cli).await);

    for (user, summary) in users.iter_mut().zip(&mut browsers) {
        summary.state = user.state().await?;
        summary.page_ready_ms = user.page_ready_ms().await?;
        summary.status = user.text("status").await?.unwrap_or_default();
        user.close().await?;
    }
    stop.cancel();
    let _ = receiver.await;
    for mut relay in relays {
        // A relay a failed step left dead has nothing to stop; the report says what failed.
        if let Err(error) = relay.process.stop().await {
            tracing::warn!(%error, "stopping a relay");
        }
    }
    Ok(BrowserReport {
        report: Report {
            scenario: "browser",
            relays: params.relays,
            users: params.browsers + 1,
            sent: counts.sent,
            accepted: counts.accepted,
            delivered: counts.delivered,
            lost: counts.lost,
            duplicates: counts.duplicates,
            out_of_order: counts.out_of_order,
            latency_ms: Percentiles::of(Vec::new()),
            wall_s: started.elapsed().as_secs_f64(),
            offline_users: 1,
            seed: params.seed,
        },
        browsers,
        checks,
        wasm_bytes,
        screenshot: screenshot.display().to_string(),
    })
}
