//! `status post|list|view|seen`: 24-hour status updates.

use anyhow::bail;
use tidings_client::{
    Client,
    status::{Audience, StatusClock},
};

use tidings_client::media::describe;

use super::format::{printable, time};

#[derive(clap::Subcommand)]
pub(crate) enum StatusCommand {
    /// Post a status for 24 hours (default audience: all your contacts). Your relay learns
    /// who it is for and when it expires, never the text.
    Post {
        /// The text (with --file: the caption, may be left out).
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// A picture or video to post (uploaded sealed, as `send --file` does).
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// Who sees it: `contacts` (default) or a comma-separated list of contact names.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// All contacts except these (comma-separated names).
        #[arg(long, value_delimiter = ',', conflicts_with = "to")]
        except: Vec<String>,
    },
    /// Whose status updates are waiting (unseen first).
    List,
    /// Show a contact's status updates in order and mark them seen (they are told); their
    /// pictures and videos are saved into the data dir's `downloads`.
    View {
        /// Contact name (or user id).
        name: String,
    },
    /// Who saw your status updates.
    Seen,
}

pub async fn run(client: &Client, command: StatusCommand) -> anyhow::Result<()> {
    let clock = StatusClock::system();
    match command {
        StatusCommand::Post {
            text,
            file,
            to,
            except,
        } => {
            let audience = audience(to, except)?;
            let text = text.unwrap_or_default();
            let posted = match file {
                Some(path) => {
                    client
                        .post_status_file(&clock, &path, &text, &audience)
                        .await?
                }
                None => client.post_status(&clock, &text, &audience).await?,
            };
            println!(
                "status posted to {} people until {}",
                posted.audience,
                time(posted.expires_at_ms, true)
            );
            if posted.unreachable > 0 {
                println!(
                    "{} of their devices could not get the key now (they will not see it)",
                    posted.unreachable
                );
            }
        }
        StatusCommand::List => {
            let overview = client.status_overview(&clock).await?;
            if overview.is_empty() {
                println!("no status updates");
            }
            for summary in overview {
                println!(
                    "{}  {} new of {}  (latest {})",
                    client.display_name(&summary.poster),
                    summary.unseen,
                    summary.total,
                    time(summary.newest_ms, true)
                );
            }
        }
        StatusCommand::View { name } => {
            let shown = client.view_statuses(&clock, &name).await?;
            if shown.is_empty() {
                println!("no status updates from {name}");
            }
            for status in shown {
                println!(
                    "[{}] {}",
                    time(status.posted_at_ms, true),
                    printable(&status.text)
                );
                if let Some(media) = &status.media {
                    match client.save_status_media(&status).await {
                        Ok(Some(saved)) => println!(
                            "  {} saved to {}",
                            describe(media),
                            printable(&saved.display().to_string())
                        ),
                        Ok(None) => {}
                        Err(error) => println!("  {} not saved: {error}", describe(media)),
                    }
                }
            }
        }
        StatusCommand::Seen => {
            let mine = client.my_statuses(&clock).await?;
            if mine.is_empty() {
                println!("no status updates of yours are live");
            }
            for status in mine {
                let seen: Vec<String> = status
                    .seen_by
                    .iter()
                    .map(|user| client.display_name(user))
                    .collect();
                let shown = match &status.media {
                    Some(media) => format!("{} {}", describe(media), status.text),
                    None => status.text.clone(),
                };
                println!(
                    "{}  seen by {} of {}: {}",
                    printable(shown.trim()),
                    seen.len(),
                    status.audience.len(),
                    if seen.is_empty() {
                        "nobody yet".to_string()
                    } else {
                        seen.join(", ")
                    }
                );
            }
        }
    }
    Ok(())
}

fn audience(to: Vec<String>, except: Vec<String>) -> anyhow::Result<Audience> {
    if !except.is_empty() {
        return Ok(Audience::Except(except));
    }
    match to.as_slice() {
        [] => Ok(Audience::Contacts),
        [only] if only == "contacts" => Ok(Audience::Contacts),
        names if names.iter().any(|name| name.is_empty()) => bail!("an empty name in --to"),
        names => Ok(Audience::Only(names.to_vec())),
    }
}
