//! `tidings-testnet`: start Tidings networks on loopback and run scenarios against them.

mod bench;
mod cluster;
mod demo;
mod device;
mod process;
mod report;
mod scenario;

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
    /// Run a named workload against relay processes and report (exit 0 only if it held).
    Scenario {
        #[command(subcommand)]
        scenario: Scenario,
    },
    /// Run a bounded benchmark against relay processes and print its figures.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
    /// Run a user's device: subscribe and stay online until SIGTERM (used for device child
    /// processes in scenarios).
    #[command(hide = true)]
    Device {
        /// The client's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Run a relay (the `tidings-relay` command line; used for relay child processes).
    #[command(hide = true)]
    Relay {
        /// Arguments for `tidings-relay`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Scenario {
    /// Users spread over relays send to random others (a quarter of them offline while
    /// everyone sends). Fails if any accepted message is lost, duplicated or out of order.
    Federation {
        /// Relay processes (the first starts the DHT, the others join it).
        #[arg(long, default_value_t = 3)]
        relays: usize,
        /// Users, spread round-robin over the relays.
        #[arg(long, default_value_t = 12)]
        users: usize,
        /// Messages in total.
        #[arg(long, default_value_t = 300)]
        messages: usize,
        /// Seed of the random workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// One group spread over relays; random members send (a quarter of the members offline
    /// meanwhile). Fails if a member misses a message, gets one twice or out of order, or a
    /// message crosses to a relay more than once.
    Group {
        /// Relay processes (the first starts the DHT, the others join it).
        #[arg(long, default_value_t = 3)]
        relays: usize,
        /// Group members, spread round-robin over the relays.
        #[arg(long, default_value_t = 12)]
        members: usize,
        /// Messages in total.
        #[arg(long, default_value_t = 60)]
        messages: usize,
        /// Seed of the random workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Watchers spread over relays watch subjects whose devices (real processes) come
    /// online, then leave cleanly, are killed, or vanish with their connection open; under
    /// everyone / contacts / nobody privacy; watchers type, write and read. Fails on any
    /// privacy violation, stored typing notice, missed update, or a departed user still
    /// shown online after the heartbeat timeout.
    Presence {
        /// Relay processes (the first starts the DHT, the others join it).
        #[arg(long, default_value_t = 3)]
        relays: usize,
        /// Users: even-numbered ones watch, odd-numbered ones come and go.
        #[arg(long, default_value_t = 12)]
        users: usize,
        /// Rounds of coming online, typing and reading, and leaving.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The relays' heartbeat timeout in seconds (how long a vanished device may look
        /// online).
        #[arg(long, default_value_t = 3)]
        heartbeat_timeout: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// One relay, sender/receiver pairs each keeping a window of messages in flight for a
    /// while: delivered msg/s and latency from queueing to the receiver's store.
    Throughput {
        /// Sender/receiver pairs.
        #[arg(long, default_value_t = 8)]
        pairs: usize,
        /// Messages each sender has in flight.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// A fixed rate across two relays (senders on one, receivers on the other): latency
    /// from queueing to the receiver's store at that load.
    Latency {
        /// Messages per second, over all senders.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Sender/receiver pairs sharing the rate.
        #[arg(long, default_value_t = 8)]
        pairs: usize,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Messages wait at the relay for an offline user, who then connects: drain msg/s, and
    /// a check that none is lost or doubled (exit 1 if one is).
    Drain {
        /// Messages waiting.
        #[arg(long, default_value_t = 5000)]
        messages: usize,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
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

/// Runs `job` in a work dir (see [`in_work_dir`]), prints its report, and fails with the
/// report's verdict.
fn run_and_report<R, F>(
    keep: Option<PathBuf>,
    json: bool,
    job: impl FnOnce(PathBuf) -> F,
) -> anyhow::Result<()>
where
    R: report::Outcome,
    F: std::future::Future<Output = anyhow::Result<R>>,
{
    let report = in_work_dir(keep, job)?;
    report.show(json)?;
    match report.failure() {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
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
        Command::Scenario {
            scenario:
                Scenario::Federation {
                    relays,
                    users,
                    messages,
                    seed,
                    json,
                    keep,
                },
        } => {
            let params = scenario::federation::Params {
                relays,
                users,
                messages,
                seed,
            };
            run_and_report(keep, json, |work| async move {
                scenario::federation::run(&work, params).await
            })
        }
        Command::Scenario {
            scenario:
                Scenario::Group {
                    relays,
                    members,
                    messages,
                    seed,
                    json,
                    keep,
                },
        } => {
            let params = scenario::group::Params {
                relays,
                members,
                messages,
                seed,
            };
            run_and_report(keep, json, |work| async move {
                scenario::group::run(&work, params).await
            })
        }
        Command::Scenario {
            scenario:
                Scenario::Presence {
                    relays,
                    users,
                    rounds,
                    heartbeat_timeout,
                    json,
                    keep,
                },
        } => {
            let params = scenario::presence::Params {
                relays,
                users,
                rounds,
                heartbeat_timeout_secs: heartbeat_timeout,
            };
            run_and_report(keep, json, |work| async move {
                scenario::presence::run(&work, params).await
            })
        }
        Command::Bench {
            bench:
                Bench::Throughput {
                    pairs,
                    window,
                    seconds,
                    json,
                    keep,
                },
        } => {
            let params = bench::throughput::Params {
                pairs,
                window,
                seconds,
            };
            run_and_report(keep, json, |work| async move {
                bench::throughput::run(&work, params).await
            })
        }
        Command::Bench {
            bench:
                Bench::Latency {
                    rate,
                    pairs,
                    seconds,
                    json,
                    keep,
                },
        } => {
            let params = bench::latency::Params {
                rate,
                pairs,
                seconds,
            };
            run_and_report(keep, json, |work| async move {
                bench::latency::run(&work, params).await
            })
        }
        Command::Bench {
            bench:
                Bench::Drain {
                    messages,
                    json,
                    keep,
                },
        } => {
            let params = bench::drain::Params { messages };
            run_and_report(keep, json, |work| async move {
                bench::drain::run(&work, params).await
            })
        }
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
