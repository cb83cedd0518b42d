//! `device link`, `device add`, `device list`, `device remove`: the devices of this account.

use anyhow::Context;
use clap::Subcommand;
use qrcode::{QrCode, render::unicode::Dense1x2};
use tidings_client::{Client, DeviceInfo, DeviceLink, LINK_WAIT};
use tidings_protocol::{DeviceId, LinkCode};

#[derive(Subcommand)]
pub(crate) enum DeviceCommand {
    /// On a new device: print a link code (and its QR code), and wait up to 10 minutes for
    /// a device holding the account key to approve it with `tidings device add CODE`.
    Link {
        /// The home relay of the account, e.g. /ip4/203.0.113.5/tcp/4717/p2p/12D3KooW...
        #[arg(long, value_name = "MULTIADDR")]
        relay: String,
        /// A name for this device, suggested in the command printed for the other device.
        #[arg(long)]
        name: Option<String>,
    },
    /// On the device holding the account key: approve a device showing a link code.
    Add {
        /// The code the new device shows (starts with "tidings-link:").
        code: String,
        /// The name the new device gets in your device list.
        #[arg(long)]
        name: Option<String>,
    },
    /// List your devices: name, id, when linked, online or last seen.
    List {
        /// Print JSON, one object per device.
        #[arg(long)]
        json: bool,
    },
    /// Remove a device (a lost laptop): it can fetch and send nothing afterwards. Only the
    /// device holding the account key can.
    Remove {
        /// The device id (from `tidings device list`).
        id: String,
    },
}

/// Runs a `device` subcommand; `link` creates the data dir, the others open it.
pub(crate) async fn run(dir: &std::path::Path, command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Link { relay, name } => link(dir, &relay, name).await,
        DeviceCommand::Add { code, name } => add(&super::open(dir)?, &code, name).await,
        DeviceCommand::List { json } => list(&super::open(dir)?, json).await,
        DeviceCommand::Remove { id } => remove(&super::open(dir)?, &id).await,
    }
}

fn qr(text: &str) -> anyhow::Result<String> {
    let code = QrCode::new(text.as_bytes()).context("the link code does not fit a QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

async fn link(dir: &std::path::Path, relay: &str, name: Option<String>) -> anyhow::Result<()> {
    if dir.join(tidings_client::KEY_FILE).exists() {
        anyhow::bail!(
            "{} already holds an identity; link into a new --data-dir",
            dir.display()
        );
    }
    let address = relay.parse().with_context(|| {
        format!("{relay:?} is not a multiaddr (like /ip4/1.2.3.4/tcp/4717/p2p/12D3KooW...)")
    })?;
    let link = DeviceLink::start(address).await?;
    let code = link.code().to_string();
    println!("{}", qr(&code)?);
    println!("link code: {code}");
    let named = name
        .map(|name| format!(" --name {name:?}"))
        .unwrap_or_default();
    println!("on the device that holds your account key, run:");
    println!("  tidings device add {code}{named}");
    println!("waiting for approval (up to 10 minutes, Ctrl-C cancels)...");
    let passphrase = super::passphrase();
    let finished = tokio::select! {
        finished = link.finish(dir, passphrase.as_deref(), LINK_WAIT) => finished?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("cancelled; nothing was saved"),
    };
    let (client, package) = finished;
    println!(
        "linked as {:?} to account {}; this device is registered at relay {}",
        package.name,
        client.user_id(),
        package.relay
    );
    Ok(())
}

async fn add(client: &Client, code: &str, name: Option<String>) -> anyhow::Result<()> {
    let code: LinkCode = code
        .parse()
        .map_err(|error| anyhow::anyhow!("that is not a link code ({error})"))?;
    let approved = client.approve_link(&code, name.as_deref()).await?;
    println!(
        "approved device {} (device list version {}); it finishes linking by itself",
        approved.device, approved.list_version
    );
    Ok(())
}

fn when(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|at| at.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "?".into())
}

fn seen(device: &DeviceInfo) -> String {
    match (device.online, device.last_seen_ms) {
        (true, _) => "online".into(),
        (false, Some(ms)) => format!("last seen {}", when(ms)),
        (false, None) => "never seen".into(),
    }
}

async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let devices = client.devices().await?;
    if json {
        let rows: Vec<serde_json::Value> = devices
            .iter()
            .map(|device| {
                serde_json::json!({
                    "id": device.device.to_string(),
                    "name": device.name,
                    "linked_at_ms": device.added_at_ms,
                    "online": device.online,
                    "last_seen_ms": device.last_seen_ms,
                    "this_device": device.this_device,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if devices.is_empty() {
        println!("your relay holds no device list for this account yet");
    }
    for device in &devices {
        let marker = if device.this_device {
            " (this device)"
        } else {
            ""
        };
        println!(
            "{}{marker}\t{}\tlinked {}\t{}",
            device.name,
            device.device,
            when(device.added_at_ms),
            seen(device)
        );
    }
    Ok(())
}

async fn remove(client: &Client, id: &str) -> anyhow::Result<()> {
    let device: DeviceId = id
        .parse()
        .map_err(|error| anyhow::anyhow!("{id:?} is not a device id ({error})"))?;
    let version = client.remove_device(device).await?;
    println!("removed device {device} (device list version {version}); the relay revoked it");
    Ok(())
}
