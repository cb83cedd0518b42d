//! `presence set` and `presence show`: who may see you, and what you may see of others.

use tidings_client::Client;
use tidings_protocol::presence::Visibility;

use super::format;

/// Who may see your presence, as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Audience {
    /// Anyone who asks.
    Everyone,
    /// Only your contacts (run again after adding contacts).
    Contacts,
    /// No one: you always appear hidden.
    Nobody,
}

impl From<Audience> for Visibility {
    fn from(audience: Audience) -> Self {
        match audience {
            Audience::Everyone => Visibility::Everyone,
            Audience::Contacts => Visibility::Contacts,
            Audience::Nobody => Visibility::Nobody,
        }
    }
}

pub async fn set(client: &Client, audience: Audience) -> anyhow::Result<()> {
    let session = client.connect().await?;
    let count = session.set_presence(audience.into()).await?;
    session.close().await;
    match audience {
        Audience::Everyone => println!("your presence and last seen are visible to everyone"),
        Audience::Contacts => {
            println!("your presence and last seen are visible to your {count} contacts only")
        }
        Audience::Nobody => println!("your presence and last seen are hidden from everyone"),
    }
    Ok(())
}

pub async fn show(client: &Client, names: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let session = client.connect().await?;
    let reports = session.watch_presence(&names).await?;
    session.close().await;
    for report in reports {
        println!(
            "{}: {}",
            client.display_name(&report.user),
            format::presence_text(&report.state)
        );
    }
    Ok(())
}

/// Every contact's name, for watching their presence.
pub fn contact_names(client: &Client) -> Vec<String> {
    client
        .store()
        .contacts()
        .map(|contacts| contacts.into_iter().map(|(name, _)| name).collect())
        .unwrap_or_default()
}
