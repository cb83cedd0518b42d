//! `tidings-testnet`: start Tidings networks on loopback and run scenarios against them.

mod bench;
mod cli;
mod cluster;
mod demo;
mod device;
mod dialled;
mod files;
mod process;
mod report;
mod scenario;
mod webdriver;

use std::path::PathBuf;

use clap::Parser;

use cli::{Bench, Cli, Command, Scenario};

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A temp dir, or `keep` if given (created if needed).
fn work_dir(keep: Option<PathBuf>) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let temp = tempfile::tempdir()?;
    let work = match keep {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            dir
        }
        None => temp.path().to_path_buf(),
    };
    Ok((temp, work))
}

/// Runs `job` on a fresh runtime, with logging, in a work dir (see [`work_dir`]).
fn in_work_dir<T, F>(keep: Option<PathBuf>, job: impl FnOnce(PathBuf) -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let (_temp, work) = work_dir(keep)?;
    on_runtime(job(work))
}

impl cli::Output {
    /// Runs `job` in a work dir (see [`in_work_dir`]), prints its report (as JSON if asked),
    /// and fails with the report's verdict.
    fn run<R, F>(self, job: impl FnOnce(PathBuf) -> F) -> anyhow::Result<()>
    where
        R: report::Outcome,
        F: std::future::Future<Output = anyhow::Result<R>>,
    {
        let report = in_work_dir(self.keep, job)?;
        report.show(self.json)?;
        match report.failure() {
            Some(why) => anyhow::bail!(why),
            None => Ok(()),
        }
    }
}

/// Runs `job` on a fresh runtime, with logging.
fn on_runtime<T>(job: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    init_logging();
    tokio::runtime::Runtime::new()?.block_on(job)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Relay { args } => {
            let program = std::iter::once("tidings-relay".to_string());
            tidings_relay::cli::main_from(program.chain(args))
        }
        Command::Scenario { scenario } => match scenario {
            Scenario::Adversary { params, output } => {
                output.run(|work| async move { scenario::adversary::run(&work, params).await })
            }
            Scenario::Chaos { params, output } => {
                output.run(|work| async move { scenario::chaos::run(&work, params).await })
            }
            Scenario::Federation { params, output } => {
                output.run(|work| async move { scenario::federation::run(&work, params).await })
            }
            Scenario::Group { params, output } => {
                output.run(|work| async move { scenario::group::run(&work, params).await })
            }
            Scenario::Media { params, output } => {
                output.run(|work| async move { scenario::media::run(&work, params).await })
            }
            Scenario::Multidevice { params, output } => {
                output.run(|work| async move { scenario::multidevice::run(&work, params).await })
            }
            Scenario::Presence { params, output } => {
                output.run(|work| async move { scenario::presence::run(&work, params).await })
            }
            Scenario::Push { params, output } => {
                output.run(|work| async move { scenario::push::run(&work, params).await })
            }
            Scenario::Status { params, output } => {
                output.run(|work| async move { scenario::status::run(&work, params).await })
            }
            Scenario::Browser { params, output } => {
                output.run(|work| async move { scenario::browser::run(&work, params).await })
            }
        },
        Command::Bench { bench } => match bench {
            Bench::Throughput { params, output } => {
                output.run(|work| async move { bench::throughput::run(&work, params).await })
            }
            Bench::Latency { params, output } => {
                output.run(|work| async move { bench::latency::run(&work, params).await })
            }
            Bench::Drain { params, output } => {
                output.run(|work| async move { bench::drain::run(&work, params).await })
            }
            Bench::Fanout { params, output } => {
                output.run(|work| async move { bench::fanout::run(&work, params).await })
            }
            Bench::Connections { params, output } => {
                output.run(|work| async move { bench::connections::run(&work, params).await })
            }
            Bench::Media { params, output } => {
                output.run(|work| async move { bench::media::run(&work, params).await })
            }
            Bench::Dht { params, output } => {
                output.run(|work| async move { bench::dht::run(&work, params).await })
            }
            Bench::Search { params, output } => {
                output.run(|work| async move { bench::search::run(&work, params).await })
            }
            Bench::Relay { params, output } => {
                output.run(|work| async move { bench::relay::run(&work, params).await })
            }
        },
        Command::Device { data_dir } => on_runtime(device::run(&data_dir)),
        Command::Demo { keep } => in_work_dir(keep, |work| async move {
            let result = demo::run(&work).await;
            if let Err(error) = &result {
                eprintln!("\nDEMO FAILED: {error:#}");
                eprintln!(
                    "(relay log: {}/relay/relay.log; rerun with --keep DIR to inspect)",
                    work.display()
                );
            }
            result
        }),
    }
}
