//! The `tidings-relay` command line, kept in the library so `tidings-testnet` can run the very
//! same relay as a child process (binary glue: errors are `anyhow` here).

use std::path::PathBuf;

use crate::{
    RegistrationPolicy, RelayConfig, RelayOptions,
    admin::{Reply, Request, print},
    invites::Invites,
};
use anyhow::Context;
use clap::{Parser, Subcommand};
use libp2p::PeerId;

/// A Tidings relay: stores and forwards end-to-end encrypted envelopes for its users.
///
/// Start with `tidings-relay init --data-dir DIR`, then `tidings-relay run --data-dir DIR`.
/// Everything the relay keeps (config, key, database) lives in the data dir.
#[derive(Parser)]
#[command(name = "tidings-relay", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct DataDir {
    /// The relay's data dir (config, key and database).
    #[arg(long, env = "TIDINGS_RELAY_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data dir: a commented relay.toml with working defaults, and a relay key.
    Init {
        #[command(flatten)]
        dir: DataDir,
        /// A human name for the relay.
        #[arg(long)]
        name: Option<String>,
        /// Listen address (multiaddr); repeat for several. Default: TCP and QUIC on port 4717.
        #[arg(long = "listen", value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Who may register.
        #[arg(long, value_enum)]
        registration: Option<RegistrationPolicy>,
        /// A relay to join the network through (multiaddr ending in /p2p/<peer id>); repeat
        /// for several. Without one, this relay starts a new network.
        #[arg(long = "bootstrap", value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// Where to serve /metrics and /healthz (host:port).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9717")]
        metrics_listen: String,
    },
    /// Serve until SIGINT or SIGTERM, then stop without losing anything accepted.
    Run {
        #[command(flatten)]
        dir: DataDir,
        /// Listen address (multiaddr), replacing the config's list; repeat for several.
        #[arg(long = "listen", value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Who may register, overriding the config.
        #[arg(long, value_enum)]
        registration: Option<RegistrationPolicy>,
        /// Where to serve /metrics and /healthz (host:port), overriding the config.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_listen: Option<String>,
        /// Print the relay's dial address (and, if served, the metrics URL on a second line)
        /// once listening, for scripts.
        #[arg(long)]
        print_addr: bool,
        /// Test harness only: read `block <peer id>` / `unblock <peer id>` lines on stdin and
        /// cut or restore links to those relays (used by `tidings-testnet scenario chaos`).
        #[arg(long, hide = true)]
        faults_from_stdin: bool,
        /// Migrate an older data dir without first copying its files into
        /// `<data-dir>/pre-upgrade-<from>-<to>-<time>/`.
        #[arg(long)]
        no_backup_before_upgrade: bool,
    },
    /// Manage invite codes (for `registration.policy = "invite"`); works while the relay runs.
    Invite {
        #[command(subcommand)]
        command: InviteCommand,
    },
    /// Show the running relay's state: version, peer id, addresses, uptime, users, devices
    /// online, mailbox, outbox and media totals, database size, DHT routing table, last
    /// commit (asked through its admin socket, `<data-dir>/admin.sock`).
    Status {
        #[command(flatten)]
        dir: DataDir,
        /// Print the numbers as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List, inspect, suspend, resume or remove the running relay's users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Copy everything the relay keeps (databases, media blobs, config, keys) into a new
    /// directory, with a manifest of checksums written last. Works while the relay runs.
    Backup {
        #[command(flatten)]
        dir: DataDir,
        /// Where to write the backup (a new or empty directory).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Recreate a data dir from a backup, after checking every file against the manifest.
    Restore {
        /// The backup (a directory written by `tidings-relay backup`).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The data dir to create (new or empty).
        #[arg(long, env = "TIDINGS_RELAY_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Give the space of deleted data back to the file system (the relay must be stopped).
    Compact {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Every registered user: registration time, devices, mailbox, media, last seen.
    List {
        #[command(flatten)]
        dir: DataDir,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One user: each device, mailbox depth and bytes, quota use, last seen.
    Show {
        #[command(flatten)]
        dir: DataDir,
        /// The user id, as `tidings` prints it.
        user: String,
        /// Print the user as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Close the user's sessions and refuse them and new mail for them until resumed.
    Suspend {
        #[command(flatten)]
        dir: DataDir,
        /// The user id, as `tidings` prints it.
        user: String,
    },
    /// Undo `suspend`.
    Resume {
        #[command(flatten)]
        dir: DataDir,
        /// The user id, as `tidings` prints it.
        user: String,
    },
    /// Delete the user: mailboxes, keys, devices, presence, profile, push subscriptions and
    /// the media blobs only they reference. Their senders are then told `unknown_recipient`.
    Remove {
        #[command(flatten)]
        dir: DataDir,
        /// The user id, as `tidings` prints it.
        user: String,
    },
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Create a code and print it.
    Create {
        #[command(flatten)]
        dir: DataDir,
        /// How many registrations the code allows.
        #[arg(long, default_value_t = 1)]
        uses: u64,
        /// Hours until the code expires (default: never).
        #[arg(long)]
        valid_hours: Option<u64>,
    },
    /// List codes with uses left.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Delete a code.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        /// The code.
        code: String,
    },
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "tidings-relay")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("tidings-relay-data"))
}

/// Runs `tidings-relay` with the process's arguments.
pub fn main() -> anyhow::Result<()> {
    main_from(std::env::args_os())
}

/// Runs `tidings-relay` with the given arguments (the first is the program name).
pub fn main_from<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .ok();
    match cli.command {
        Command::Init {
            dir,
            name,
            listen,
            registration,
            bootstrap,
            metrics_listen,
        } => {
            let mut config = RelayConfig {
                bootstrap,
                metrics_listen: Some(metrics_listen),
                ..RelayConfig::default()
            };
            if let Some(name) = name {
                config.name = name;
            }
            if !listen.is_empty() {
                config.listen = listen;
            }
            if let Some(policy) = registration {
                config.registration.policy = policy;
            }
            let peer = crate::init(&dir.data_dir, &config)?;
            println!("initialized relay {peer} in {}", dir.data_dir.display());
            println!(
                "edit {}/relay.toml if needed, then: tidings-relay run --data-dir {}",
                dir.data_dir.display(),
                dir.data_dir.display()
            );
            Ok(())
        }
        Command::Run {
            dir,
            listen,
            registration,
            metrics_listen,
            print_addr,
            faults_from_stdin,
            no_backup_before_upgrade,
        } => run(
            dir.data_dir,
            RunOverrides {
                listen,
                registration,
                metrics_listen,
                backup_before_upgrade: !no_backup_before_upgrade,
            },
            Outputs {
                print_addr,
                faults_from_stdin,
            },
        ),
        Command::Invite { command } => invite(command),
        Command::Status { dir, json } => admin(&dir.data_dir, Request::Status, json),
        Command::Users { command } => match command {
            UsersCommand::List { dir, json } => admin(&dir.data_dir, Request::ListUsers, json),
            UsersCommand::Show { dir, user, json } => {
                admin(&dir.data_dir, Request::ShowUser(user), json)
            }
            UsersCommand::Suspend { dir, user } => {
                admin(&dir.data_dir, Request::SuspendUser(user), false)
            }
            UsersCommand::Resume { dir, user } => {
                admin(&dir.data_dir, Request::ResumeUser(user), false)
            }
            UsersCommand::Remove { dir, user } => {
                admin(&dir.data_dir, Request::RemoveUser(user), false)
            }
        },
        Command::Backup { dir, to } => backup(&dir.data_dir, &to),
        Command::Restore { from, data_dir } => restore(&from, &data_dir),
        Command::Compact { dir } => compact(&dir.data_dir),
    }
}

/// Command-line settings that replace the config file's.
struct RunOverrides {
    listen: Vec<String>,
    registration: Option<RegistrationPolicy>,
    metrics_listen: Option<String>,
    backup_before_upgrade: bool,
}

/// How `run` talks to a script or test harness that started it.
struct Outputs {
    print_addr: bool,
    faults_from_stdin: bool,
}

fn run(data_dir: PathBuf, overrides: RunOverrides, outputs: Outputs) -> anyhow::Result<()> {
    let RunOverrides {
        listen,
        registration,
        metrics_listen,
        backup_before_upgrade,
    } = overrides;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-files limit raised"),
        Err(error) => tracing::warn!(%error, "could not raise the open-files limit"),
    }
    let mut config = RelayConfig::load(&data_dir).with_context(|| {
        format!(
            "loading the config; did you run `tidings-relay init --data-dir {}`?",
            data_dir.display()
        )
    })?;
    if !listen.is_empty() {
        config.listen = listen;
    }
    if let Some(policy) = registration {
        config.registration.policy = policy;
    }
    if metrics_listen.is_some() {
        config.metrics_listen = metrics_listen;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        let options = RelayOptions {
            backup_before_upgrade,
            ..RelayOptions::new(data_dir, config)
        };
        let relay = crate::start(options).await?;
        for address in relay.dial_addrs() {
            tracing::info!(%address, "dial address");
        }
        if outputs.faults_from_stdin {
            tokio::spawn(read_faults(relay.network()));
        }
        if outputs.print_addr {
            match relay.tcp_dial_addr() {
                Some(address) => println!("{address}"),
                None => println!("{}", relay.peer_id()),
            }
            if let Some(metrics) = relay.metrics_addr() {
                println!("http://{metrics}/metrics");
            }
        }
        wait_for_signal().await;
        tracing::info!("stopping: finishing requests already taken");
        relay.shutdown().await;
        anyhow::Ok(())
    });
    // Everything accepted is committed by now; only a blocked stdin read (the fault reader)
    // may still hold a runtime thread, and it must not keep the process alive.
    runtime.shutdown_background();
    served
}

/// Applies `block <peer id>` / `unblock <peer id>` lines from stdin until it closes.
async fn read_faults(network: crate::network::NetworkHandle) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (verb, peer) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let blocked = match verb {
            "block" => true,
            "unblock" => false,
            _ => {
                tracing::warn!(%line, "unknown fault command");
                continue;
            }
        };
        match peer.trim().parse::<PeerId>() {
            Ok(peer) => network.set_blocked(peer, blocked).await,
            Err(error) => tracing::warn!(%line, %error, "fault command without a peer id"),
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the relay");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn invite(command: InviteCommand) -> anyhow::Result<()> {
    match command {
        InviteCommand::Create {
            dir,
            uses,
            valid_hours,
        } => {
            let invites = open_invites(&dir.data_dir)?;
            let invite = invites.create(uses, valid_hours.map(|hours| hours * 3600 * 1000))?;
            println!("{}", invite.code);
        }
        InviteCommand::List { dir } => {
            let invites = open_invites(&dir.data_dir)?;
            for invite in invites.list()? {
                let expiry = match invite.expires_at_ms {
                    Some(at) => format!("expires at {at} ms since epoch"),
                    None => "never expires".into(),
                };
                println!("{}  {} uses left, {expiry}", invite.code, invite.uses_left);
            }
        }
        InviteCommand::Revoke { dir, code } => {
            let invites = open_invites(&dir.data_dir)?;
            if !invites.revoke(&code)? {
                anyhow::bail!("no invite code {code:?}");
            }
            println!("revoked {code}");
        }
    }
    Ok(())
}

/// Sends one request to the relay running on `data_dir` and prints its answer.
fn admin(data_dir: &std::path::Path, request: Request, json: bool) -> anyhow::Result<()> {
    let verb = match &request {
        Request::SuspendUser(_) => "suspended",
        Request::ResumeUser(_) => "resumed",
        Request::RemoveUser(_) => "removed",
        _ => "",
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let reply = runtime.block_on(crate::admin::request(data_dir, request))??;
    let text = match (&reply, json) {
        (Reply::Status(report), true) => serde_json::to_string_pretty(report)?,
        (Reply::Users(list), true) => serde_json::to_string_pretty(list)?,
        (Reply::User(detail), true) => serde_json::to_string_pretty(detail)?,
        (Reply::Done(change), true) => serde_json::to_string_pretty(change)?,
        (Reply::Status(report), false) => print::status(report),
        (Reply::Users(list), false) => print::user_list(list),
        (Reply::User(detail), false) => print::user_detail(detail),
        (Reply::Done(change), false) => print::change(verb, change),
        (Reply::Backup(summary), true) => serde_json::to_string_pretty(summary)?,
        (Reply::Backup(summary), false) => backup_text(summary),
    };
    print!("{}", text.trim_end());
    println!();
    Ok(())
}

fn open_invites(data_dir: &std::path::Path) -> anyhow::Result<Invites> {
    if !data_dir.join(crate::node_key::KEY_FILE).exists() {
        anyhow::bail!(
            "{} is not a relay data dir; run `tidings-relay init --data-dir {}` first",
            data_dir.display(),
            data_dir.display()
        );
    }
    Ok(Invites::open(data_dir)?)
}

/// Asks the relay running on `data_dir` to write a backup into `to`; with no relay running,
/// writes it from the files directly.
fn backup(data_dir: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    use crate::admin::{ClientError, protocol::AdminError};
    let to = std::path::absolute(to).with_context(|| format!("resolving {}", to.display()))?;
    let shown = to
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", to.display()))?
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = match runtime.block_on(crate::admin::request(
        data_dir,
        Request::Backup { to: shown },
    )) {
        Ok(Ok(Reply::Backup(summary))) => summary,
        Ok(Ok(_)) => anyhow::bail!("the relay answered something else than a backup"),
        Ok(Err(AdminError::Unknown)) => {
            anyhow::bail!("the running relay is older and cannot write backups; stop it first")
        }
        Ok(Err(error)) => return Err(error.into()),
        Err(ClientError::NotRunning(_) | ClientError::Stale(_)) => {
            tracing::info!("no relay is running: copying the files directly");
            let manifest = crate::backup::backup_offline(data_dir, &to)?;
            crate::backup::BackupSummary::of(&to, &manifest)
        }
        Err(error) => return Err(error.into()),
    };
    println!("{}", backup_text(&summary).trim_end());
    Ok(())
}

fn backup_text(summary: &crate::backup::BackupSummary) -> String {
    let mut text = format!(
        "backup of {} files ({} bytes) written to {}; mail acknowledged before {} (UTC) is \
         in it\n",
        summary.files, summary.bytes, summary.to, summary.started_at
    );
    if summary.blobs_gone > 0 {
        text.push_str(&format!(
            "{} media blobs were collected during the backup and are not in it\n",
            summary.blobs_gone
        ));
    }
    text
}

fn restore(from: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let manifest = crate::backup::restore(from, data_dir)
        .with_context(|| format!("restoring {}", from.display()))?;
    println!(
        "restored {} files of the backup started {} into {}",
        manifest.files.len(),
        manifest.started_at,
        data_dir.display()
    );
    println!(
        "start it with: tidings-relay run --data-dir {}",
        data_dir.display()
    );
    Ok(())
}

fn compact(data_dir: &std::path::Path) -> anyhow::Result<()> {
    for file in crate::backup::compact_data_dir(data_dir)? {
        println!(
            "{}: {} -> {} bytes ({} freed)",
            file.file,
            file.before,
            file.after,
            file.before.saturating_sub(file.after)
        );
    }
    Ok(())
}
