//! The multidevice scenario's accounts: users homed round-robin on relay processes, each with
//! 1 + (i % D) devices linked through the real link flow, contacts that reach the linked
//! devices by own-device sync, and one group.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use tidings_client::{Client, DeviceLink};
use tidings_protocol::GroupId;

use super::super::users::{self, name};
use crate::cluster::Cluster;

/// How long linking one device may take (approval and registration included).
const LINK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a linked device may take to learn its account's contacts by sync.
const CONTACT_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The group's name in every member's client.
pub const GROUP: &str = "multidevice";

/// One device: (user index, device index within the user; 0 holds the account key).
pub type Dev = (usize, usize);

/// Everyone's devices and the group.
pub struct World {
    /// Per user, its devices; device 0 made the account.
    pub devices: Vec<Vec<Client>>,
    /// Per user, its devices' data directories.
    pub dirs: Vec<Vec<PathBuf>>,
    /// The group.
    pub group: GroupId,
    /// Its members (user indexes), the creator (user 0) first.
    pub members: Vec<usize>,
}

impl World {
    /// The client of `dev`.
    pub fn client(&self, dev: Dev) -> &Client {
        &self.devices[dev.0][dev.1]
    }

    /// Every device, in user then device order.
    pub fn all(&self) -> impl Iterator<Item = Dev> + '_ {
        self.devices
            .iter()
            .enumerate()
            .flat_map(|(user, devices)| (0..devices.len()).map(move |device| (user, device)))
    }

    /// Sets up `users` accounts under `dir` on `cluster`, user `i` with 1 + (i % per_user)
    /// devices, and a group of the first `group_size` users.
    pub async fn build(
        dir: &Path,
        cluster: &Cluster,
        users: usize,
        per_user: usize,
        group_size: usize,
    ) -> anyhow::Result<World> {
        let primaries = users::register_all(dir, users, cluster).await?;
        let mut devices = Vec::with_capacity(users);
        let mut dirs = Vec::with_capacity(users);
        for (index, primary) in primaries.into_iter().enumerate() {
            let home = &cluster.relays[index % cluster.relays.len()].addr;
            let mut account = vec![primary];
            let mut paths = vec![dir.join(name(index))];
            for device in 1..1 + index % per_user.max(1) {
                let data_dir = dir.join(format!("{}.{device}", name(index)));
                let linked = link(&account[0], home, &data_dir, &format!("d{device}"))
                    .await
                    .with_context(|| format!("linking device {device} of {}", name(index)))?;
                account.push(linked);
                paths.push(data_dir);
            }
            devices.push(account);
            dirs.push(paths);
        }
        // Contacts are added on the primaries only, after linking: each addition is queued
        // for the account's other devices, which must learn them by sync.
        let primaries: Vec<Client> = devices.iter().map(|account| account[0].clone()).collect();
        users::introduce_all(&primaries)?;
        for primary in &primaries {
            let mut session = users::connect(primary).await;
            session.flush().await?;
            session.close().await;
        }
        for (index, account) in devices.iter().enumerate() {
            for linked in &account[1..] {
                wait_for_contacts(linked, index, users).await?;
            }
        }
        let members: Vec<usize> = (0..group_size.min(users)).collect();
        let names: Vec<String> = members[1..].iter().map(|member| name(*member)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut creator = users::connect(&primaries[0]).await;
        let group = creator.create_group(GROUP, &names).await?;
        creator.close().await;
        for member in &members {
            for device in &devices[*member] {
                users::wait_for_group(device, group).await?;
            }
        }
        Ok(World {
            devices,
            dirs,
            group,
            members,
        })
    }
}

/// Links a new device in `data_dir` to `primary`'s account at `home`: the new device starts
/// a link and shows its code, the primary approves it, the new device takes its package and
/// registers.
async fn link(
    primary: &Client,
    home: &libp2p::Multiaddr,
    data_dir: &Path,
    device_name: &str,
) -> anyhow::Result<Client> {
    tokio::time::timeout(LINK_TIMEOUT, async {
        let new = DeviceLink::start(home.clone()).await?;
        let code = new.code();
        let path = data_dir.to_path_buf();
        let waiting = tokio::spawn(async move { new.finish(&path, None, LINK_TIMEOUT).await });
        primary.approve_link(&code, Some(device_name)).await?;
        let (client, _package) = waiting.await??;
        anyhow::Ok(client)
    })
    .await
    .context("linking timed out")?
}

/// Syncs `device` (of user `index`) until it knows every other user as a contact.
async fn wait_for_contacts(device: &Client, index: usize, users: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONTACT_SYNC_TIMEOUT;
    loop {
        let known = (0..users)
            .filter(|other| *other != index)
            .all(|other| device.resolve(&name(other)).is_ok());
        if known {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "a linked device of {} never learned its account's contacts",
            name(index)
        );
        let mut session = users::connect(device).await;
        let _ = session.sync(Duration::from_secs(2)).await;
    }
}
