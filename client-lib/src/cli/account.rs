//! `account export` and `init --import`: saving the account key under a passphrase, and restoring it on a new device.

use std::{
    io::{BufRead, Read},
    path::Path,
};

use anyhow::Context;
use tidings_client::Client;

/// The variable that holds the export's passphrase (asked on standard input otherwise).
const EXPORT_PASSPHRASE_VAR: &str = "TIDINGS_EXPORT_PASSPHRASE";

/// Longest passphrase line read from standard input.
const MAX_PASSPHRASE_LINE: u64 = 1024;

/// The export passphrase: from [`EXPORT_PASSPHRASE_VAR`], else one line of standard input.
fn export_passphrase() -> anyhow::Result<String> {
    if let Some(value) = std::env::var(EXPORT_PASSPHRASE_VAR)
        .ok()
        .filter(|value| !value.is_empty())
    {
        return Ok(value);
    }
    eprintln!("passphrase for the account export (or set {EXPORT_PASSPHRASE_VAR}):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_PASSPHRASE_LINE)
        .read_line(&mut line)
        .context("reading the passphrase")?;
    let passphrase = line.trim_end_matches(['\r', '\n']).to_string();
    if passphrase.is_empty() {
        anyhow::bail!("an account export needs a passphrase");
    }
    Ok(passphrase)
}

/// `tidings account export FILE`.
pub(crate) fn export(client: &Client, file: &Path) -> anyhow::Result<()> {
    let passphrase = export_passphrase()?;
    client.export_account(file, &passphrase)?;
    println!("wrote the account key to {} (mode 600)", file.display());
    println!(
        "keep it and its passphrase safe, away from this device: with it `tidings init --import` \
         restores your account on a new device if all your devices are lost"
    );
    Ok(())
}

/// `tidings init --import FILE`.
pub(crate) fn import(dir: &Path, file: &Path) -> anyhow::Result<()> {
    let passphrase = export_passphrase()?;
    let client = Client::init_import(dir, file, &passphrase, super::passphrase().as_deref())?;
    println!("restored account {} in {}", client.user_id(), dir.display());
    println!(
        "this is a new device of the account; history stays on your other devices. next: \
         tidings register --relay MULTIADDR (publishes a device list naming this device)"
    );
    Ok(())
}
