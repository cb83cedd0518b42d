//! The `tidings-testnet` command line: subcommands, scenarios and benches with their flags.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
pub(crate) enum Scenario {
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
pub(crate) enum Bench {
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
