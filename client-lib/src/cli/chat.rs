//! `send`, `listen`, `history`, `read`.

use std::time::Duration;

use tidings_client::{Client, MessageStatus};

use super::format;

/// How long `history` waits for the relay before showing what is stored here.
const HISTORY_SYNC_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn send(client: &Client, name: &str, text: &str) -> anyhow::Result<()> {
    // Queued first, so the message is never lost even if the relay is unreachable.
    let queued = client.queue_text(name, text).await?;
    let mut session = match client.connect().await {
        Ok(session) => session,
        Err(error) => {
            println!(
                "… queued: cannot reach your relay ({error}); the next `tidings send`, `listen` or `history` sends it"
            );
            return Ok(());
        }
    };
    let report = session.flush().await;
    session.close().await;
    let status = client
        .store()
        .message(&queued.id)?
        .map(|record| record.status)
        .unwrap_or(MessageStatus::Pending);
    match (status, report) {
        (MessageStatus::Failed(reason), _) => {
            anyhow::bail!("✗ not sent to {name}: {}", format::printable(&reason))
        }
        (MessageStatus::Pending, Ok(report)) => {
            println!("… queued for {name}: {}", report.waiting.join("; "))
        }
        (MessageStatus::Pending, Err(error)) => {
            println!("… queued for {name}: {error}; it will be sent later")
        }
        (MessageStatus::Sent, _) => println!("✓ sent to {name}"),
        (status, _) => println!("{} to {name}", format::ticks(&status)),
    }
    Ok(())
}

pub async fn listen(client: &Client) -> anyhow::Result<()> {
    let mut backoff = Duration::from_secs(1);
    loop {
        match client.connect().await {
            Ok(mut session) => {
                backoff = Duration::from_secs(1);
                if let Err(error) = session.subscribe().await {
                    eprintln!("subscribing failed: {error}");
                } else {
                    eprintln!("connected; waiting for messages (Ctrl-C to stop)");
                    let names = super::presence::contact_names(client);
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    match session.watch_presence(&names).await {
                        Ok(reports) => {
                            for report in reports {
                                let event = tidings_client::Event::Presence {
                                    user: report.user,
                                    state: report.state,
                                };
                                if let Some(line) = format::event_line(client, &event) {
                                    println!("{line}");
                                }
                            }
                        }
                        Err(error) => eprintln!("(presence of contacts unavailable: {error})"),
                    }
                    loop {
                        let event = tokio::select! {
                            _ = tokio::signal::ctrl_c() => return Ok(()),
                            event = session.next_event() => event,
                        };
                        match event {
                            Ok(event) => {
                                if let Some(line) = format::event_line(client, &event) {
                                    println!("{line}");
                                }
                            }
                            Err(error) => {
                                eprintln!("disconnected: {error}");
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => eprintln!("cannot reach your relay: {error}"),
        }
        eprintln!("reconnecting in {}s", backoff.as_secs());
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Fetches what waits at the relay (and sends what waits here); says so if it cannot.
pub async fn sync_quietly(client: &Client) {
    let synced = async {
        let mut session = client.connect().await?;
        session.sync(HISTORY_SYNC_TIMEOUT).await?;
        session.close().await;
        Ok::<_, tidings_client::ClientError>(())
    };
    if let Err(error) = synced.await {
        eprintln!("(could not reach your relay: {error}; showing what is stored here)");
    }
}

pub async fn history(client: &Client, name: &str, offline: bool) -> anyhow::Result<()> {
    if !offline {
        sync_quietly(client).await;
    }
    // Resolved after syncing: a group may have become known just now.
    let conversation = client.conversation(name)?;
    let records = client.store().history(&conversation)?;
    if records.is_empty() {
        println!("no messages with {name} yet");
    }
    for record in &records {
        println!("{}", format::history_line(client, record));
    }
    Ok(())
}

pub async fn read(client: &Client, name: &str) -> anyhow::Result<()> {
    let count = client.mark_read(name).await?;
    match client.connect().await {
        Ok(mut session) => {
            session.flush().await?;
            session.close().await;
            println!("marked {count} message(s) from {name} read");
        }
        Err(error) => println!(
            "marked {count} message(s) read here; the read receipt waits until your relay is reachable ({error})"
        ),
    }
    Ok(())
}
