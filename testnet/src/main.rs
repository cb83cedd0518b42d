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
    /// Honest users chat 1:1 and in a group while a malicious relay (an in-process peer
    /// speaking federation and Kademlia) and malicious users (raw streams, forged envelopes,
    /// misused keys) run the attacks of issue 12: impersonation, group takeover and
    /// squatting, federation lockout, storage floods, key draining, presence leaks, typing
    /// forgery, DHT abuse and lower ones. Each attack is judged by what honest users see.
    /// Exits 0 only if no attack succeeded and no honest message was lost.
    Adversary {
        /// Relay processes (at least 3; the first starts the DHT, the others join it).
        #[arg(long, default_value_t = 3)]
        relays: usize,
        /// Honest users (at least 3), spread round-robin over the relays.
        #[arg(long, default_value_t = 6)]
        users: usize,
        /// Honest messages, spread over the attacks, a fifth of them to the group.
        #[arg(long, default_value_t = 60)]
        messages: usize,
        /// Seed of the honest chat.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Users send 1:1 and group messages while relays are SIGKILLed and restarted, relay
    /// links are cut and healed (--partition) and users drop offline. Fails if any accepted
    /// message is lost, duplicated or out of order at any intended device.
    Chaos {
        /// Relay processes (the first starts the DHT, the others join it).
        #[arg(long, default_value_t = 3)]
        relays: usize,
        /// Users, spread round-robin over the relays (one group per ten users).
        #[arg(long, default_value_t = 12)]
        users: usize,
        /// Messages in total, a fifth of them to groups.
        #[arg(long, default_value_t = 600)]
        messages: usize,
        /// Messages per second while the faults happen (the run lasts messages / rate).
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Mean seconds between relay kills (0: no kills).
        #[arg(long, default_value_t = 3.0)]
        kill_every: f64,
        /// Also cut and heal links between relays.
        #[arg(long)]
        partition: bool,
        /// Seed of the workload and the faults.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
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
    /// One group spread over relays, one member sending paced messages: time until every
    /// online member has each one, each member's arrival, and relay-to-relay batches per
    /// message (exit 1 if a member missed one).
    Fanout {
        /// Relay processes; member i is homed on relay i % relays.
        #[arg(long, default_value_t = 3)]
        relays: usize,
        /// Group members, the sender included.
        #[arg(long, default_value_t = 64)]
        members: usize,
        /// Timed messages.
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// Milliseconds between two messages.
        #[arg(long, default_value_t = 250)]
        interval_ms: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Idle devices (real client sessions, subscribed) on one relay process: the relay's
    /// resident memory per connection, and the time to connect them all.
    Connections {
        /// Devices connected at once.
        #[arg(long, default_value_t = 1000)]
        devices: usize,
        /// Seconds connected and idle before the relay's memory is read.
        #[arg(long, default_value_t = 1)]
        idle_secs: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data and logs, client stores) here.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Relays in this process forming one DHT; users register on random relays, then other
    /// relays look their home records up: latency and Kademlia requests per lookup (exit 1
    /// if a lookup failed).
    Dht {
        /// Relays (past 20, k = 20 replication no longer puts every record on every relay).
        #[arg(long, default_value_t = 50)]
        relays: usize,
        /// Users (home records), each looked up once.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// Seed of the random choices of relays.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of a human report.
        #[arg(long)]
        json: bool,
        /// Keep the working directory (relay data, client stores) here.
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
                Scenario::Adversary {
                    relays,
                    users,
                    messages,
                    seed,
                    json,
                    keep,
                },
        } => {
            let params = scenario::adversary::Params {
                relays,
                users,
                messages,
                seed,
            };
            run_and_report(keep, json, |work| async move {
                scenario::adversary::run(&work, params).await
            })
        }
        Command::Scenario {
            scenario:
                Scenario::Chaos {
                    relays,
                    users,
                    messages,
                    rate,
                    kill_every,
                    partition,
                    seed,
                    json,
                    keep,
                },
        } => {
            anyhow::ensure!(
                kill_every >= 0.0 && kill_every.is_finite(),
                "--kill-every must be zero or more seconds"
            );
            let params = scenario::chaos::Params {
                relays,
                users,
                messages,
                rate,
                kill_every: std::time::Duration::from_secs_f64(kill_every),
                partition,
                seed,
            };
            run_and_report(keep, json, |work| async move {
                scenario::chaos::run(&work, params).await
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
        Command::Bench {
            bench:
                Bench::Fanout {
                    relays,
                    members,
                    messages,
                    interval_ms,
                    json,
                    keep,
                },
        } => {
            let params = bench::fanout::Params {
                relays,
                members,
                messages,
                interval_ms,
            };
            run_and_report(keep, json, |work| async move {
                bench::fanout::run(&work, params).await
            })
        }
        Command::Bench {
            bench:
                Bench::Connections {
                    devices,
                    idle_secs,
                    json,
                    keep,
                },
        } => {
            let params = bench::connections::Params { devices, idle_secs };
            run_and_report(keep, json, |work| async move {
                bench::connections::run(&work, params).await
            })
        }
        Command::Bench {
            bench:
                Bench::Dht {
                    relays,
                    users,
                    seed,
                    json,
                    keep,
                },
        } => {
            let params = bench::dht::Params {
                relays,
                users,
                seed,
            };
            run_and_report(keep, json, |work| async move {
                bench::dht::run(&work, params).await
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
