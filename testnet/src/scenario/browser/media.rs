//! Media through the page: a file attached in the page (its file input) and saved by the CLI
//! user with the same SHA-256, and one sent by the CLI user, saved through the page's Device
//! API and hashed in the page (`crypto.subtle.digest`) to the same SHA-256.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use rand::{SeedableRng, rngs::StdRng};
use serde_json::json;
use tidings_client::{Client, Direction};
use tidings_protocol::BlobId;

use super::{POLL_EVERY, chat, page::PageUser, report::Check, steps::check};
use crate::files::{digest_of, write_random};

/// Size of each file sent, bytes (random, from the run's seed).
const MEDIA_BYTES: u64 = 300 * 1024;

/// How long a file may take to go up, arrive and be saved.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(60);

/// Mixed into the run's seed for the files' bytes.
const MEDIA_SEED_SALT: u64 = 0x6d65_6469_6120;

/// The names the two files are sent under.
const FROM_PAGE: &str = "from-page.bin";
const FROM_CLI: &str = "from-cli.bin";

/// Both directions, as two checks: `media_page_to_cli` and `media_cli_to_page`.
pub async fn media(user: &PageUser, cli: &Client, work: &Path, seed: u64) -> Vec<Check> {
    let mut rng = StdRng::seed_from_u64(seed ^ MEDIA_SEED_SALT);
    let dir = work.join("media");
    let up = check("media_page_to_cli", page_to_cli(user, cli, &dir, &mut rng)).await;
    let down = check("media_cli_to_page", cli_to_page(user, cli, &dir, &mut rng)).await;
    vec![up, down]
}

/// The page attaches a file to the chat with the CLI user; the CLI user saves it (as `media
/// save` does) and its SHA-256 is the original's. The page's progress bar ends full.
async fn page_to_cli(
    user: &PageUser,
    cli: &Client,
    dir: &Path,
    rng: &mut StdRng,
) -> anyhow::Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let original = dir.join(FROM_PAGE);
    let want = write_random(&original, MEDIA_BYTES, rng)?;
    let bytes = std::fs::read(&original)?;
    chat::open_chat(user).await?;
    user.run(
        "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));\
         const input = document.querySelector('[data-testid=\"attach-file\"]');\
         const picked = new DataTransfer();\
         picked.items.add(new File([bytes], arguments[1]));\
         input.files = picked.files;\
         input.dispatchEvent(new Event('change', { bubbles: true }));",
        json!([
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            FROM_PAGE
        ]),
    )
    .await?;
    let deadline = Instant::now() + MEDIA_TIMEOUT;
    let id = loop {
        let arrived = cli.history(&user.name)?.into_iter().find(|record| {
            record.direction == Direction::Incoming
                && record
                    .media
                    .as_ref()
                    .is_some_and(|media| media.name == FROM_PAGE)
        });
        if let Some(record) = arrived {
            break record.id;
        }
        if Instant::now() >= deadline {
            let status = user.text("attach-status").await?.unwrap_or_default();
            bail!("the CLI user never got {FROM_PAGE} (the page says: {status})");
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let saved_dir = dir.join("saved-by-cli");
    std::fs::create_dir_all(&saved_dir)?;
    let saved = cli.save_media(id, &saved_dir, |_| {}).await?;
    let got = digest_of(&saved)?;
    ensure!(
        got == want,
        "the CLI saved {got}, not the page's file {want}"
    );
    let progress = user
        .browser()?
        .execute(
            "return document.querySelector('[data-testid=\"attach-progress\"]').value;",
            json!([]),
        )
        .await?;
    ensure!(
        progress.as_f64() == Some(1.0),
        "the page's progress bar ended at {progress}, not full"
    );
    Ok(true)
}

/// The CLI user sends a file to the page; the page saves it through its Device API and
/// hashes what it got: the original's SHA-256.
async fn cli_to_page(
    user: &PageUser,
    cli: &Client,
    dir: &Path,
    rng: &mut StdRng,
) -> anyhow::Result<bool> {
    let original = dir.join(FROM_CLI);
    let want = write_random(&original, MEDIA_BYTES, rng)?;
    let mut session = cli.connect().await?;
    let sent = session.send_file(&user.name, &original, None, |_| {}).await;
    session.close().await;
    sent?;
    chat::open_chat(user).await?;
    let deadline = Instant::now() + MEDIA_TIMEOUT;
    loop {
        // Clicks Save once the message shows; then, once saved, hashes the saved File.
        let state = user
            .run(
                "const box = document.querySelector(\
                   `[data-testid=\"media\"][data-name=\"${CSS.escape(arguments[0])}\"]`);\
                 if (!box) { return { state: 'missing' }; }\
                 const link = box.querySelector('[data-testid=\"media-save\"]');\
                 if (link.dataset.error) { return { state: 'error', error: link.dataset.error }; }\
                 if (!link.dataset.ready) {\
                   if (!link.dataset.asked) { link.dataset.asked = 'true'; link.click(); }\
                   return { state: 'saving', shows: link.textContent, stage: link.dataset.stage,\
                     progress: box.querySelector('[data-testid=\"media-progress\"]').value };\
                 }\
                 const buffer = await link.savedFile.arrayBuffer();\
                 const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));\
                 return { state: 'saved', size: buffer.byteLength,\
                   sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('') };",
                json!([FROM_CLI]),
            )
            .await?;
        match state.get("state").and_then(|state| state.as_str()) {
            Some("saved") => {
                let hex = state.get("sha256").and_then(|hex| hex.as_str());
                let got = hex
                    .and_then(blob_id_of_hex)
                    .context("no SHA-256 from the page")?;
                ensure!(
                    got == want,
                    "the page saved {got} ({} bytes), not the CLI's file {want}",
                    state.get("size").cloned().unwrap_or_default()
                );
                return Ok(true);
            }
            Some("error") => bail!("the page could not save {FROM_CLI}: {state}"),
            _ if Instant::now() >= deadline => {
                bail!("the page never saved {FROM_CLI} (last: {state})")
            }
            _ => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

/// A SHA-256 in lowercase hex as a [`BlobId`] (which is one).
fn blob_id_of_hex(hex: &str) -> Option<BlobId> {
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(BlobId::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_digest_reads_as_the_same_blob_id() {
        let id = BlobId::of(b"media");
        let hex: String = id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(blob_id_of_hex(&hex), Some(id));
        assert_eq!(blob_id_of_hex(&hex[..62]), None);
        assert_eq!(blob_id_of_hex(&"zz".repeat(32)), None);
    }
}
