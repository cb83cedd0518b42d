//! The `tidings-testnet` command line: subcommands, scenarios and benches with their flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{bench, scenario};

/// Starts Tidings relays and clients on this machine (loopback only) and runs scenarios.
#[derive(Parser)]
#[command(name = "tidings-testnet", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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

/// What every scenario and bench takes besides its own parameters.
#[derive(Args)]
pub(crate) struct Output {
    /// Print one JSON object instead of a human report.
    #[arg(long)]
    pub(crate) json: bool,
    /// Keep the working directory (relay data and logs, client stores) here.
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Scenario {
    /// Honest users chat 1:1 and in a group while a malicious relay (an in-process peer
    /// speaking federation and Kademlia) and malicious users (raw streams, forged envelopes,
    /// misused keys) run the attacks of issue 12: impersonation, group takeover and
    /// squatting, federation lockout, storage floods, key draining, presence leaks, typing
    /// forgery, DHT abuse and lower ones. Each attack is judged by what honest users see.
    /// Exits 0 only if no attack succeeded and no honest message was lost.
    Adversary {
        #[command(flatten)]
        params: scenario::adversary::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Users send 1:1 and group messages while relays are SIGKILLed and restarted, relay
    /// links are cut and healed (--partition) and users drop offline. Fails if any accepted
    /// message is lost, duplicated or out of order at any intended device.
    Chaos {
        #[command(flatten)]
        params: scenario::chaos::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Users spread over relays send to random others (a quarter of them offline while
    /// everyone sends). Fails if any accepted message is lost, duplicated or out of order.
    Federation {
        #[command(flatten)]
        params: scenario::federation::Params,
        #[command(flatten)]
        output: Output,
    },
    /// One group spread over relays; random members send (a quarter of the members offline
    /// meanwhile). Fails if a member misses a message, gets one twice or out of order, or a
    /// message crosses to a relay more than once.
    Group {
        #[command(flatten)]
        params: scenario::group::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Random files (a few KB up to --max-size) sent 1:1 and to groups across relays, some
    /// sent twice and some forwarded; every recipient saves every file and compares its
    /// SHA-256. Fails if a file is lost or corrupt, a re-send or forward uploads again, or a
    /// relay stores a blob twice or anything that is no blob of the run.
    Media {
        #[command(flatten)]
        params: scenario::media::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Accounts with 1..D devices (linked by the real link flow) spread over relays send 1:1
    /// and group messages from random devices, some devices offline meanwhile; one device is
    /// removed halfway; reads on one device must show on the others. Fails if any intended
    /// device misses a message, gets one twice or out of order, or the removed device gets
    /// anything sent after its removal.
    Multidevice {
        #[command(flatten)]
        params: scenario::multidevice::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Watchers spread over relays watch subjects whose devices (real processes) come
    /// online, then leave cleanly, are killed, or vanish with their connection open; under
    /// everyone / contacts / nobody privacy; watchers type, write and read. Fails on any
    /// privacy violation, stored typing notice, missed update, or a departed user still
    /// shown online after the heartbeat timeout.
    Presence {
        #[command(flatten)]
        params: scenario::presence::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Every device stays offline with a Web Push subscription at its relay; users send it
    /// 1:1 and group messages; a Web Push receiver on loopback decrypts each push and wakes
    /// its device (connect, drain, ack, disconnect). Fails if a message reached a device
    /// without a push waking it for it, a push carried a text, a user id or a name, a push
    /// was invalid, or a message was lost.
    Push {
        #[command(flatten)]
        params: scenario::push::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Users spread over relays post statuses to random audiences ("only" and "all except"
    /// lists); everyone fetches and views what their relay hands them. Fails if a status was
    /// shown or handed to someone outside its audience, an audience member never saw one,
    /// or a relay or client still held one after its expiry (short lifetimes here) plus one
    /// sweep.
    Status {
        #[command(flatten)]
        params: scenario::status::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Two relays as processes (TCP, QUIC, WebSocket) serving the built page (web/build.sh),
    /// browser users in Debian's headless Chromium (driven through chromedriver) and a CLI
    /// user. Saves a screenshot of the page. Fails if a page does not get ready or a message
    /// is lost, duplicated or out of order.
    Browser {
        #[command(flatten)]
        params: scenario::browser::Params,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Subcommand)]
pub(crate) enum Bench {
    /// One relay, sender/receiver pairs each keeping a window of messages in flight for a
    /// while: delivered msg/s and latency from queueing to the receiver's store.
    Throughput {
        #[command(flatten)]
        params: bench::throughput::Params,
        #[command(flatten)]
        output: Output,
    },
    /// A fixed rate across two relays (senders on one, receivers on the other): latency
    /// from queueing to the receiver's store at that load.
    Latency {
        #[command(flatten)]
        params: bench::latency::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Messages wait at the relay for an offline user, who then connects: drain msg/s, and
    /// a check that none is lost or doubled (exit 1 if one is).
    Drain {
        #[command(flatten)]
        params: bench::drain::Params,
        #[command(flatten)]
        output: Output,
    },
    /// One group spread over relays, one member sending paced messages: time until every
    /// online member has each one, each member's arrival, and relay-to-relay batches per
    /// message (exit 1 if a member missed one).
    Fanout {
        #[command(flatten)]
        params: bench::fanout::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Idle devices (real client sessions, subscribed) on one relay process: the relay's
    /// resident memory per connection, and the time to connect them all.
    Connections {
        #[command(flatten)]
        params: bench::connections::Params,
        #[command(flatten)]
        output: Output,
    },
    /// One file (--size-mib, and one a quarter of that) uploaded through a relay and saved
    /// through it and through a second relay (fetch + serve): MiB/s next to a plain copy on
    /// the same disk, and the relays' resident memory (baseline and peak) at both sizes.
    Media {
        #[command(flatten)]
        params: bench::media::Params,
        #[command(flatten)]
        output: Output,
    },
    /// Relays in this process forming one DHT; users register on random relays, then other
    /// relays look their home records up: latency and Kademlia requests per lookup (exit 1
    /// if a lookup failed).
    Dht {
        #[command(flatten)]
        params: bench::dht::Params,
        #[command(flatten)]
        output: Output,
    },
    /// One client's history filled with --messages through the receive path (real Olm
    /// envelopes, no relay): search index rebuild time, its size, and query p50/p99 over a
    /// fixed mix (exit 1 if a checked query's results differ from a scan).
    Search {
        #[command(flatten)]
        params: bench::search::Params,
        #[command(flatten)]
        output: Output,
    },
    /// The relay alone: raw devices speak the client protocol frame by frame (pre-signed
    /// envelopes, receivers that ack without decrypting or storing) against relay processes.
    /// --scenario throughput (--pairs, --window, --secs), rate (--rate, --burst), offline
    /// (--messages: push, then drain) or idle (--devices); --relays 2 homes the receivers on
    /// a second relay. Reports msg/s, latency percentiles, and each relay's CPU and RSS.
    Relay {
        #[command(flatten)]
        params: bench::relay::Params,
        #[command(flatten)]
        output: Output,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parameters_take_their_defaults_and_flags() {
        let cli = Cli::parse_from([
            "tidings-testnet",
            "scenario",
            "chaos",
            "--kill-every",
            "0.5",
        ]);
        let Command::Scenario {
            scenario: Scenario::Chaos { params, output },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(params.kill_every, std::time::Duration::from_millis(500));
        assert_eq!((params.relays, params.users, params.messages), (3, 12, 600));
        assert!(!params.partition && !output.json && output.keep.is_none());
        let refused =
            Cli::try_parse_from(["tidings-testnet", "scenario", "chaos", "--kill-every=-1"]);
        assert!(refused.is_err(), "negative seconds are refused");
        let cli = Cli::parse_from([
            "tidings-testnet",
            "scenario",
            "presence",
            "--heartbeat-timeout",
            "5",
            "--json",
        ]);
        let Command::Scenario {
            scenario: Scenario::Presence { params, output },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(params.heartbeat_timeout_secs, 5);
        assert!(output.json);
    }

    #[test]
    fn the_multidevice_scenario_takes_its_flags() {
        let cli = Cli::parse_from(["tidings-testnet", "scenario", "multidevice"]);
        let Command::Scenario {
            scenario: Scenario::Multidevice { params, .. },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        let sizes = (
            params.relays,
            params.users,
            params.devices_per_user,
            params.messages,
        );
        assert_eq!(sizes, (2, 6, 3, 200));
        let cli = Cli::parse_from([
            "tidings-testnet",
            "scenario",
            "multidevice",
            "--relays",
            "3",
            "--users",
            "9",
            "--devices-per-user",
            "4",
            "--messages",
            "50",
            "--seed",
            "7",
            "--json",
        ]);
        let Command::Scenario {
            scenario: Scenario::Multidevice { params, output },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        let sizes = (
            params.relays,
            params.users,
            params.devices_per_user,
            params.messages,
            params.seed,
        );
        assert_eq!(sizes, (3, 9, 4, 50, 7));
        assert!(output.json);
    }

    #[test]
    fn the_push_scenario_is_small_by_default() {
        let cli = Cli::parse_from(["tidings-testnet", "scenario", "push", "--json"]);
        let Command::Scenario {
            scenario: Scenario::Push { params, .. },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        let size = (params.relays, params.users, params.messages, params.seed);
        assert_eq!(size, (2, 4, 24, 1));
    }

    #[test]
    fn the_media_scenario_takes_sizes_with_suffixes() {
        let cli = Cli::parse_from(["tidings-testnet", "scenario", "media"]);
        let Command::Scenario {
            scenario: Scenario::Media { params, .. },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        let sizes = (params.relays, params.users, params.files);
        assert_eq!(sizes, (3, 8, 20));
        assert_eq!((params.min_size, params.max_size), (4096, 8 << 20));
        let cli = Cli::parse_from([
            "tidings-testnet",
            "scenario",
            "media",
            "--files",
            "5",
            "--max-size",
            "40M",
            "--min-size",
            "100",
        ]);
        let Command::Scenario {
            scenario: Scenario::Media { params, .. },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(
            (params.files, params.min_size, params.max_size),
            (5, 100, 40 << 20)
        );
        let refused =
            Cli::try_parse_from(["tidings-testnet", "scenario", "media", "--max-size", "big"]);
        assert!(refused.is_err(), "a size that is no number is refused");
    }

    #[test]
    fn the_relay_bench_takes_its_scenario_and_shapes() {
        let cli = Cli::parse_from(["tidings-testnet", "bench", "relay"]);
        let Command::Bench {
            bench: Bench::Relay { params, .. },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(params.scenario, bench::relay::Scenario::Throughput);
        assert_eq!((params.relays, params.pairs, params.window), (1, 8, 64));
        assert_eq!((params.runs, params.data_dir), (1, None));
        let cli = Cli::parse_from([
            "tidings-testnet",
            "bench",
            "relay",
            "--scenario",
            "rate",
            "--rate",
            "1000",
            "--burst",
            "1",
            "--relays",
            "2",
        ]);
        let Command::Bench {
            bench: Bench::Relay { params, .. },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(params.scenario, bench::relay::Scenario::Rate);
        assert_eq!((params.rate, params.burst, params.relays), (1000, 1, 2));
        let refused = Cli::try_parse_from(["tidings-testnet", "bench", "relay", "--scenario", "x"]);
        assert!(refused.is_err(), "an unknown scenario is refused");
    }

    #[test]
    fn the_browser_scenario_takes_its_page_and_screenshot() {
        let cli = Cli::parse_from(["tidings-testnet", "scenario", "browser"]);
        let Command::Scenario {
            scenario: Scenario::Browser { params, .. },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!((params.relays, params.browsers), (2, 2));
        assert_eq!(params.page, PathBuf::from("web/pkg"));
        assert!(params.screenshot.is_none());
        let cli = Cli::parse_from([
            "tidings-testnet",
            "scenario",
            "browser",
            "--page",
            "/tmp/page",
            "--screenshot",
            "chat.png",
            "--json",
        ]);
        let Command::Scenario {
            scenario: Scenario::Browser { params, output },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(params.page, PathBuf::from("/tmp/page"));
        assert_eq!(params.screenshot, Some(PathBuf::from("chat.png")));
        assert!(output.json);
    }
}
