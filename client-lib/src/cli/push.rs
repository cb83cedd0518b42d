//! `push set|show|clear` and `wake`: Web Push subscriptions and the wake-up they trigger.

use std::time::Duration;

use anyhow::Context;
use base64::{
    Engine,
    engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD},
};
use tidings_client::{Client, PushState};
use tidings_protocol::push::PushSubscription;

/// How long `tidings wake` waits for the relay to hand over what is waiting.
const WAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Subcommand)]
pub(crate) enum PushCommand {
    /// Register where your relay pushes to while this device is offline (replacing any
    /// earlier endpoint). Your push distributor (e.g. the ntfy app with UnifiedPush) or browser
    /// gives the three values. Pushes carry only "new messages" and a count, encrypted to
    /// these keys.
    Set {
        /// The endpoint URL (https://...).
        url: String,
        /// The subscription's P-256 public key (p256dh), base64url.
        p256dh: String,
        /// The subscription's auth secret, base64url.
        auth: String,
    },
    /// Show the endpoint your relay pushes to, and the relay's VAPID key.
    Show,
    /// Stop pushes to this device.
    Clear,
}

pub async fn run(client: &Client, command: PushCommand) -> anyhow::Result<()> {
    let state = match command {
        PushCommand::Set { url, p256dh, auth } => {
            let subscription = PushSubscription {
                endpoint: url,
                p256dh: base64url(&p256dh).context("p256dh is not base64url")?,
                auth: base64url(&auth).context("auth is not base64url")?,
            };
            subscription.validate()?;
            let state = client.set_push(Some(subscription)).await?;
            println!("your relay now pushes to this endpoint while this device is offline");
            state
        }
        PushCommand::Show => client.push_state().await?,
        PushCommand::Clear => {
            let state = client.set_push(None).await?;
            println!("pushes to this device stopped");
            state
        }
    };
    show(&state);
    Ok(())
}

fn show(state: &PushState) {
    match &state.subscription {
        Some(subscription) => {
            println!("endpoint: {}", subscription.endpoint);
            println!("p256dh:   {}", URL_SAFE_NO_PAD.encode(&subscription.p256dh));
            println!("auth:     {}", URL_SAFE_NO_PAD.encode(&subscription.auth));
        }
        None => println!("endpoint: none (no pushes)"),
    }
    if state.vapid_key.is_empty() {
        println!("relay VAPID key: none (this relay does not push)");
    } else {
        println!(
            "relay VAPID key: {}",
            URL_SAFE_NO_PAD.encode(&state.vapid_key)
        );
    }
}

/// Decodes base64url with or without padding (push services and browsers give either).
fn base64url(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let text = text.trim();
    if text.ends_with('=') {
        URL_SAFE.decode(text)
    } else {
        URL_SAFE_NO_PAD.decode(text)
    }
}

pub async fn wake(client: &Client) -> anyhow::Result<()> {
    let report = client.wake(WAKE_TIMEOUT).await?;
    for event in &report.events {
        if let Some(line) = super::format::event_line(client, event) {
            println!("{line}");
        }
    }
    println!("{} new message(s)", report.messages);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_base64url_with_or_without_padding() {
        assert_eq!(base64url("AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(base64url("AQI=").unwrap(), vec![1, 2]);
        assert_eq!(base64url("AQI").unwrap(), vec![1, 2]);
        assert_eq!(base64url("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(base64url("not base64!").is_err());
    }
}
