//! `tidings-testnet`: start Tidings networks on loopback and run scenarios against them.

mod demo;
mod process;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Starts Tidings relays and clients on this machine (loopback only) and runs scenarios.
#[derive(Parser)]
#[command(name = "tidings-testnet", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A relay process, two users, online and offline delivery across a relay crash, with
    /// ticks. Exits 0 only if every message arrived once and in order.
    Demo {
        /// Keep the working directory (relay data, client stores, relay log) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Run a relay (the `tidings-relay` command line; used for relay child processes).
    #[command(hide = true)]
    Relay {
        /// Arguments for `tidings-relay`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Relay { args } => {
            let program = std::iter::once("tidings-relay".to_string());
            tidings_relay::cli::main_from(program.chain(args))
        }
        Command::Demo { keep } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .init();
            let temp = tempfile::tempdir()?;
            let work = match keep {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    dir
                }
                None => temp.path().to_path_buf(),
            };
            let runtime = tokio::runtime::Runtime::new()?;
            let result = runtime.block_on(demo::run(&work));
            if let Err(error) = &result {
                eprintln!("\nDEMO FAILED: {error:#}");
                eprintln!(
                    "(relay log: {}/relay/relay.log; rerun with --keep DIR to inspect)",
                    work.display()
                );
            }
            result
        }
    }
}
