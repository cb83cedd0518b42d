//! `init`, `register`, `card`, `contact`, `status`.

use anyhow::Context;
use tidings_client::Client;
use tidings_protocol::ContactCard;

pub fn init(dir: &std::path::Path) -> anyhow::Result<()> {
    let passphrase = super::passphrase();
    let client = Client::init(dir, passphrase.as_deref())?;
    println!("created identity in {}", dir.display());
    println!("your user id: {}", client.user_id());
    if passphrase.is_none() {
        println!(
            "(key file protected by file permissions only; set TIDINGS_PASSPHRASE at init to encrypt it)"
        );
    }
    println!("next: tidings register --relay MULTIADDR");
    Ok(())
}

pub async fn register(client: &Client, relay: &str, invite: Option<String>) -> anyhow::Result<()> {
    let address = relay.parse().with_context(|| {
        format!("{relay:?} is not a multiaddr (like /ip4/1.2.3.4/tcp/4717/p2p/12D3KooW...)")
    })?;
    let registration = client.register(address, invite).await?;
    if registration.new {
        println!("registered at relay {}", registration.relay);
    } else {
        println!("already registered at relay {}", registration.relay);
    }
    println!("share your card: tidings card");
    Ok(())
}

pub async fn move_home(client: &Client, relay: &str, invite: Option<String>) -> anyhow::Result<()> {
    let address = relay
        .parse()
        .with_context(|| format!("{relay:?} is not a multiaddr"))?;
    let moved = client.move_home(address, invite).await?;
    println!("your home is now relay {}", moved.relay);
    if moved.previous_told {
        println!("your previous relay is handing on everything it still held for you");
    } else {
        println!("your previous relay could not be reached; it is told on your next connect");
    }
    Ok(())
}

pub fn card(client: &Client, name: Option<String>) -> anyhow::Result<()> {
    println!("{}", client.card(name)?);
    Ok(())
}

pub fn add_contact(client: &Client, name: &str, card: &str) -> anyhow::Result<()> {
    let card: ContactCard = card.parse().map_err(|error| {
        anyhow::anyhow!("that is not a contact card ({error}); it starts with \"tidings:\"")
    })?;
    client.add_contact(name, &card)?;
    println!("added {name} ({})", card.user);
    Ok(())
}

pub fn rename_contact(client: &Client, name: &str, new_name: &str) -> anyhow::Result<()> {
    client.rename_contact(name, new_name)?;
    println!("renamed {name} to {new_name} (your other devices follow on the next sync)");
    Ok(())
}

pub fn remove_contact(client: &Client, name: &str) -> anyhow::Result<()> {
    client.remove_contact(name)?;
    println!("removed {name} (your other devices follow on the next sync)");
    Ok(())
}

pub fn list_contacts(client: &Client) -> anyhow::Result<()> {
    let contacts = client.store().contacts()?;
    if contacts.is_empty() {
        println!("no contacts yet: tidings contact add NAME CARD");
    }
    for (name, card) in contacts {
        println!("{name}\t{}", card.user);
    }
    Ok(())
}

pub fn status(client: &Client) -> anyhow::Result<()> {
    println!("user id: {}", client.user_id());
    match client.relay_addr()? {
        Some(relay) => println!("home relay: {relay}"),
        None => println!("home relay: none yet (tidings register --relay MULTIADDR)"),
    }
    let pending = client.store().pending(10_000)?.len();
    println!("waiting to be sent: {pending}");
    Ok(())
}
