//! `profile set|show`: your profile (name, about, picture), sealed for your contacts, and
//! theirs.

use std::path::PathBuf;

use tidings_client::{Client, profile::ProfileUpdate};
use tidings_protocol::profile::Profile;

#[derive(clap::Subcommand)]
pub(crate) enum ProfileCommand {
    /// Change your profile. Your relay keeps it encrypted; your contacts get the key (and
    /// so see the change), nobody else can read it.
    Set {
        /// The name you go by (at most 64 bytes).
        #[arg(long)]
        name: Option<String>,
        /// A line about you (at most 512 bytes).
        #[arg(long, value_name = "TEXT")]
        about: Option<String>,
        /// A picture (an image file; uploaded encrypted, like a photo you send).
        #[arg(long, value_name = "PATH")]
        picture: Option<PathBuf>,
    },
    /// Show your profile, or a contact's (fetching a newer one if they shared it).
    Show {
        /// Contact name (or user id); yours if left out.
        name: Option<String>,
        /// Also save the picture here (a file, or a directory: its own name inside).
        #[arg(long, value_name = "PATH")]
        save_picture: Option<PathBuf>,
    },
}

pub async fn run(client: &Client, command: ProfileCommand) -> anyhow::Result<()> {
    match command {
        ProfileCommand::Set {
            name,
            about,
            picture,
        } => {
            if name.is_none() && about.is_none() && picture.is_none() {
                anyhow::bail!("give --name, --about or --picture");
            }
            let profile = client
                .set_profile(ProfileUpdate {
                    name,
                    about,
                    picture,
                })
                .await?;
            print_profile("your profile", &profile);
            println!("sent to your contacts (version {})", profile.version);
        }
        ProfileCommand::Show {
            name: None,
            save_picture,
        } => match client.own_profile()? {
            Some(profile) => {
                print_profile("your profile", &profile);
                save(client, None, save_picture).await?;
            }
            None => println!("you have no profile yet: tidings profile set --name NAME"),
        },
        ProfileCommand::Show {
            name: Some(name),
            save_picture,
        } => match client.profile(&name).await? {
            Some(profile) => {
                print_profile(&name, &profile);
                save(client, Some(&name), save_picture).await?;
            }
            None => println!("{name} has shared no profile with you"),
        },
    }
    Ok(())
}

/// Saves the picture of `who`'s profile to `path`, if asked.
async fn save(client: &Client, who: Option<&str>, path: Option<PathBuf>) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    match client.save_profile_picture(who, &path, |_| {}).await? {
        Some(saved) => println!("  saved:   {}", saved.display()),
        None => println!("  (no picture to save)"),
    }
    Ok(())
}

fn print_profile(whose: &str, profile: &Profile) {
    println!("{whose} (version {})", profile.version);
    println!("  name:    {}", profile.name);
    println!("  about:   {}", profile.about);
    match &profile.picture {
        Some(picture) => println!(
            "  picture: {} ({})",
            picture.name,
            tidings_client::media::human_size(picture.size)
        ),
        None => println!("  picture: none"),
    }
}
