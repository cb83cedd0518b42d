//! Arguments of the `tidings` command and dispatch to its subcommands.

mod account;
mod chat;
mod chatview;
mod device;
mod format;
mod group;
mod media;
mod presence;
mod profile;
mod push;
mod search;
mod setup;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tidings_client::{Client, ClientError};

/// End-to-end encrypted chat over Tidings relays.
///
/// Quick start: `tidings init`, `tidings register --relay MULTIADDR`, give your `tidings card`
/// to a friend, `tidings contact add NAME THEIR-CARD`, then `tidings send NAME TEXT` and
/// `tidings listen`. Several users can live on one machine with different --data-dir values.
#[derive(Parser)]
#[command(name = "tidings", version)]
struct Cli {
    /// Where this user's keys, contacts and history live.
    #[arg(long, global = true, env = "TIDINGS_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new identity (account and device keys) in the data dir.
    ///
    /// Set TIDINGS_PASSPHRASE to encrypt the key file with a passphrase; later commands then
    /// need the same variable set.
    Init {
        /// Restore the account from an export (`tidings account export`) as a new device.
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
    },
    /// Register this device at a relay, which becomes your home relay.
    Register {
        /// The relay's address, e.g. /ip4/203.0.113.5/tcp/4717/p2p/12D3KooW...
        #[arg(long, value_name = "MULTIADDR")]
        relay: String,
        /// Invite code, if the relay asks for one.
        #[arg(long)]
        invite: Option<String>,
    },
    /// Make another relay your home: register there, and have the old one hand on what it
    /// still holds for you. Your contacts need do nothing: relays find you through the DHT.
    Move {
        /// The new relay's address, e.g. /ip4/198.51.100.7/tcp/4717/p2p/12D3KooW...
        #[arg(long, value_name = "MULTIADDR")]
        relay: String,
        /// Invite code, if the new relay asks for one.
        #[arg(long)]
        invite: Option<String>,
    },
    /// Print your contact card: give it to people so they can add you.
    Card {
        /// A display name to suggest (they pick their own).
        #[arg(long)]
        name: Option<String>,
    },
    /// Manage contacts.
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// Send a text or a file; prints ✓ once your relay has stored it.
    ///
    /// A file (`--file PATH`, up to your relay's limit, 100 MiB by default) is encrypted
    /// here, uploaded to your relay with a progress bar (an interrupted upload resumes when
    /// you send the same file again), then sent as a photo, video, audio or file message.
    Send {
        /// Contact name (or user id).
        name: String,
        /// The message.
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Send this file instead of a text.
        #[arg(long, value_name = "PATH", conflicts_with = "text")]
        file: Option<PathBuf>,
        /// Text shown with the file.
        #[arg(long, value_name = "TEXT", requires = "file")]
        caption: Option<String>,
    },
    /// Media you received: save (download and decrypt) a file.
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
    /// Forward a photo, video or file (the #ID `history` shows) to a contact or group,
    /// without uploading it again.
    Forward {
        /// The media message's id (shown as #ID by `history`).
        #[arg(value_name = "MSG-ID")]
        id: String,
        /// Contact or group name (or id).
        name: String,
    },
    /// Print incoming messages and tick changes until Ctrl-C (reconnects by itself).
    Listen,
    /// Show a conversation with ✓ sent / ✓✓ delivered / read marks.
    History {
        /// Contact name (or user id).
        name: String,
        /// Do not contact the relay first (show only what is stored here).
        #[arg(long)]
        offline: bool,
    },
    /// Mark a conversation read: the sender sees "read".
    Read {
        /// Contact name (or user id).
        name: String,
    },
    /// Show who you are, your relay, and what is waiting to be sent; with a subcommand,
    /// 24-hour status updates (`status post TEXT`, `list`, `view NAME`, `seen`).
    Status {
        #[command(subcommand)]
        command: Option<status::StatusCommand>,
    },
    /// Open a live chat with a contact or group: history with ticks, their presence,
    /// "typing…", Enter sends (`/file PATH` sends a file), what you see is marked read. Esc or
    /// Ctrl-C leaves.
    Chat {
        /// Contact or group name (or id).
        name: String,
    },
    /// Presence: who may see you online and your last seen, and what others show you.
    Presence {
        #[command(subcommand)]
        command: PresenceCommand,
    },
    /// Push: let your relay wake this device (through a UnifiedPush distributor such as ntfy,
    /// or any Web Push service) when messages arrive while it is offline.
    Push {
        #[command(subcommand)]
        command: push::PushCommand,
    },
    /// Receive everything waiting at your relay once, send what waits here, and disconnect:
    /// what an app's push handler runs when a push arrives.
    Wake,
    /// Group chats: end-to-end encrypted, fanned out by your relay.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Your devices: link a new one, list, remove.
    Device {
        #[command(subcommand)]
        command: device::DeviceCommand,
    },
    /// Your account key: `tidings account export FILE` (restore with `init --import FILE`).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Search your history on this device (1:1 chats, groups, captions, file names): the
    /// messages holding every word, newest first, matches highlighted. Nothing leaves the
    /// device.
    Search {
        /// The words to find (any case).
        #[arg(required = true)]
        words: Vec<String>,
        /// Only in this conversation (contact or group name, or id).
        #[arg(long = "in", value_name = "NAME")]
        within: Option<String>,
        /// Only messages from this contact (or `me`).
        #[arg(long, value_name = "NAME")]
        from: Option<String>,
        /// At most this many results (default 20, at most 1000).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Delete one message (the #ID `search` shows) from this device's history and search
    /// index. Other devices and the other side keep theirs.
    Delete {
        /// The message's id.
        #[arg(value_name = "MSG-ID")]
        id: String,
    },
    /// Your profile (name, about, picture), end-to-end encrypted for your contacts, and
    /// theirs.
    Profile {
        #[command(subcommand)]
        command: profile::ProfileCommand,
    },
}

#[derive(Subcommand)]
enum MediaCommand {
    /// Download, check and decrypt the file of a media message, with a progress bar (an
    /// interrupted download resumes). The file appears only once whole and verified.
    Save {
        /// The media message's id (shown as #ID by `history`).
        #[arg(value_name = "MSG-ID")]
        id: String,
        /// Where to save it: a file, or a directory (the file's own name inside it).
        /// Default: the current directory.
        path: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Write the account key, sealed under a passphrase (TIDINGS_EXPORT_PASSPHRASE or asked).
    Export {
        /// Where to write it.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum PresenceCommand {
    /// Choose who may see your presence and last seen (your relay enforces it).
    Set {
        /// everyone, contacts (your current contacts), or nobody.
        #[arg(value_enum)]
        audience: presence::Audience,
    },
    /// Show whether contacts are online, or when they were last seen.
    Show {
        /// Contact names (or user ids).
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a group with some of your contacts; you are its admin.
    Create {
        /// The group's name.
        name: String,
        /// Contacts to add.
        members: Vec<String>,
    },
    /// Add contacts to a group (admins).
    Add {
        /// Group name or id.
        group: String,
        /// Contacts to add.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove members from a group (admins). They cannot read what is sent afterwards.
    Remove {
        /// Group name or id.
        group: String,
        /// Members to remove.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Make members admins (admins).
    Promote {
        /// Group name or id.
        group: String,
        /// Members to promote.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Leave a group.
    Leave {
        /// Group name or id.
        group: String,
    },
    /// Send a text or a file (`--file PATH [--caption TEXT]`) to a group.
    Send {
        /// Group name or id.
        group: String,
        /// The message.
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Send this file instead of a text (uploaded once, however many members).
        #[arg(long, value_name = "PATH", conflicts_with = "text")]
        file: Option<PathBuf>,
        /// Text shown with the file.
        #[arg(long, value_name = "TEXT", requires = "file")]
        caption: Option<String>,
    },
    /// Show members, roles, and who got and read your recent messages.
    Info {
        /// Group name or id.
        group: String,
        /// Also list each member's receipt for your latest message.
        #[arg(long)]
        receipts: bool,
    },
    /// List your groups.
    List,
}

#[derive(Subcommand)]
enum ContactCommand {
    /// Save someone's card under a name of your choice.
    Add {
        /// The name you will use for them.
        name: String,
        /// Their card (starts with "tidings:").
        card: String,
    },
    /// List your contacts.
    List,
    /// Rename a contact (your other devices follow).
    Rename {
        /// The name it has.
        name: String,
        /// The name it gets.
        new_name: String,
    },
    /// Remove a contact (your other devices follow).
    Remove {
        /// The contact's name.
        name: String,
    },
}

/// `send` and `group send`: a file if one is given, else the text.
pub(crate) async fn send(
    client: &Client,
    name: &str,
    text: Option<String>,
    file: Option<PathBuf>,
    caption: Option<String>,
) -> anyhow::Result<()> {
    match (file, text) {
        (Some(file), _) => media::send_file(client, name, &file, caption.as_deref()).await,
        (None, Some(text)) => chat::send(client, name, &text).await,
        (None, None) => anyhow::bail!("give a text or --file PATH"),
    }
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "tidings")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("tidings-data"))
}

fn passphrase() -> Option<String> {
    std::env::var("TIDINGS_PASSPHRASE")
        .ok()
        .filter(|value| !value.is_empty())
}

fn open(data_dir: &std::path::Path) -> Result<Client, ClientError> {
    Client::open(data_dir, passphrase().as_deref())
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDINGS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.data_dir;
    match cli.command {
        Command::Init { import: None } => setup::init(&dir),
        Command::Init { import: Some(file) } => account::import(&dir, &file),
        Command::Device { command } => device::run(&dir, command).await,
        Command::Account {
            command: AccountCommand::Export { file },
        } => account::export(&open(&dir)?, &file),
        Command::Register { relay, invite } => setup::register(&open(&dir)?, &relay, invite).await,
        Command::Move { relay, invite } => setup::move_home(&open(&dir)?, &relay, invite).await,
        Command::Card { name } => setup::card(&open(&dir)?, name),
        Command::Contact {
            command: ContactCommand::Add { name, card },
        } => setup::add_contact(&open(&dir)?, &name, &card),
        Command::Contact {
            command: ContactCommand::List,
        } => setup::list_contacts(&open(&dir)?),
        Command::Contact {
            command: ContactCommand::Rename { name, new_name },
        } => setup::rename_contact(&open(&dir)?, &name, &new_name),
        Command::Contact {
            command: ContactCommand::Remove { name },
        } => setup::remove_contact(&open(&dir)?, &name),
        Command::Send {
            name,
            text,
            file,
            caption,
        } => send(&open(&dir)?, &name, text, file, caption).await,
        Command::Media {
            command: MediaCommand::Save { id, path },
        } => media::save(&open(&dir)?, &id, path.as_deref()).await,
        Command::Forward { id, name } => media::forward(&open(&dir)?, &id, &name).await,
        Command::Listen => chat::listen(&open(&dir)?).await,
        Command::History { name, offline } => chat::history(&open(&dir)?, &name, offline).await,
        Command::Read { name } => chat::read(&open(&dir)?, &name).await,
        Command::Status { command: None } => setup::status(&open(&dir)?),
        Command::Status {
            command: Some(command),
        } => status::run(&open(&dir)?, command).await,
        Command::Group { command } => group::run(&open(&dir)?, command).await,
        Command::Chat { name } => chatview::chat(&open(&dir)?, &name).await,
        Command::Presence {
            command: PresenceCommand::Set { audience },
        } => presence::set(&open(&dir)?, audience).await,
        Command::Presence {
            command: PresenceCommand::Show { names },
        } => presence::show(&open(&dir)?, &names).await,
        Command::Push { command } => push::run(&open(&dir)?, command).await,
        Command::Wake => push::wake(&open(&dir)?).await,
        Command::Search {
            words,
            within,
            from,
            limit,
        } => search::search(
            &open(&dir)?,
            &words,
            within.as_deref(),
            from.as_deref(),
            limit,
        ),
        Command::Delete { id } => search::delete(&open(&dir)?, &id),
        Command::Profile { command } => profile::run(&open(&dir)?, command).await,
    }
}
