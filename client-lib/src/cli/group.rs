//! `group create|add|remove|promote|leave|send|info|list` (`send --file` sends media).

use tidings_client::{Client, Conversation, Direction, Session};
use tidings_protocol::group::Role;

use super::{GroupCommand, format};

async fn connect(client: &Client) -> anyhow::Result<Session> {
    client
        .connect()
        .await
        .map_err(|error| anyhow::anyhow!("cannot reach your relay: {error}"))
}

pub async fn run(client: &Client, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Create { name, members } => {
            let mut session = connect(client).await?;
            let names: Vec<&str> = members.iter().map(String::as_str).collect();
            let group = session.create_group(&name, &names).await?;
            session.close().await;
            println!(
                "created group \"{name}\" ({group}) with {} members",
                names.len() + 1
            );
        }
        GroupCommand::Add { group, members } => {
            let id = client.group_id(&group)?;
            let mut session = connect(client).await?;
            let names: Vec<&str> = members.iter().map(String::as_str).collect();
            session.add_to_group(id, &names).await?;
            session.close().await;
            println!("added {} to {group}", names.join(", "));
        }
        GroupCommand::Remove { group, members } => {
            let id = client.group_id(&group)?;
            let mut session = connect(client).await?;
            let names: Vec<&str> = members.iter().map(String::as_str).collect();
            session.remove_from_group(id, &names).await?;
            session.close().await;
            println!("removed {} from {group}", names.join(", "));
        }
        GroupCommand::Promote { group, members } => {
            let id = client.group_id(&group)?;
            let mut session = connect(client).await?;
            let names: Vec<&str> = members.iter().map(String::as_str).collect();
            session.promote_in_group(id, &names).await?;
            session.close().await;
            println!("{} now admin of {group}", names.join(", "));
        }
        GroupCommand::Leave { group } => {
            let id = client.group_id(&group)?;
            let mut session = connect(client).await?;
            session.leave_group(id).await?;
            session.close().await;
            println!("left {group}");
        }
        GroupCommand::Send {
            group,
            text,
            file,
            caption,
        } => {
            client.group_id(&group)?;
            super::send(client, &group, text, file, caption).await?;
        }
        GroupCommand::Info { group, receipts } => {
            super::chat::sync_quietly(client).await;
            info(client, &group, receipts)?
        }
        GroupCommand::List => {
            let groups = client.store().groups()?;
            if groups.is_empty() {
                println!("no groups yet: tidings group create NAME [MEMBER...]");
            }
            for group in groups {
                let d = &group.descriptor;
                let mine = if d.is_member(&client.user_id()) {
                    ""
                } else {
                    "  (you left)"
                };
                println!(
                    "{}\t{}\t{} members{mine}",
                    format::printable(&d.name),
                    d.group,
                    d.members.len()
                );
            }
        }
    }
    Ok(())
}

fn info(client: &Client, group: &str, receipts: bool) -> anyhow::Result<()> {
    let id = client.group_id(group)?;
    let descriptor = client.group(&id)?.descriptor;
    println!(
        "group \"{}\" ({}), version {}",
        format::printable(&descriptor.name),
        descriptor.group,
        descriptor.version
    );
    println!("members ({}):", descriptor.members.len());
    for member in descriptor.members.iter() {
        let role = match member.role {
            Role::Admin => "admin",
            Role::Member => "member",
        };
        let me = if member.user == client.user_id() {
            " (you)"
        } else {
            ""
        };
        println!("  {:<20} {role}{me}", client.display_name(&member.user));
    }
    let mine: Vec<_> = client
        .store()
        .history(&Conversation::Group(id))?
        .into_iter()
        .filter(|record| record.direction == Direction::Outgoing)
        .collect();
    if !mine.is_empty() {
        println!("your recent messages:");
    }
    for record in mine.iter().rev().take(10).rev() {
        println!("  {}", format::history_line(client, record));
    }
    if receipts && let Some(last) = mine.last() {
        println!("receipts for \"{}\":", last.text);
        let got = client.store().receipts(&last.id)?;
        for member in descriptor
            .members
            .iter()
            .filter(|m| m.user != client.user_id())
        {
            let status = got
                .iter()
                .find(|(user, _)| *user == member.user)
                .map(|(_, status)| status.ticks())
                .unwrap_or("✓ not yet delivered");
            println!("  {:<20} {status}", client.display_name(&member.user));
        }
    }
    Ok(())
}
