//! This account's devices: linking a new device (its side and the approving side), listing and removing devices, exporting and importing the account key.
//!
//! Linking: the new device makes a device key and shows a [`LinkCode`]
//! ([`DeviceLink::start`]); the device holding the account key approves it
//! ([`Client::approve_link`]): it publishes the held list plus the new device, then leaves a
//! [`LinkPackage`] sealed with the code's secret at the home relay. The new device takes it
//! ([`DeviceLink::finish`]), opens it, saves its key file and registers; the held list names
//! it, so the relay takes it.

use std::{collections::VecDeque, path::Path, time::Duration};

use libp2p::{Multiaddr, PeerId};
use tidings_keys::{Identity, NoAccountKey, PendingLink, link};
use tidings_protocol::{
    DeviceEntry, DeviceId, DeviceList, DeviceListError, LinkCode, LinkPackage, SignedDeviceList,
    client::DeviceSeen, now_ms,
};

use crate::{
    calls::{OwnDeviceList, PublishDeviceList, PutLink, TakeLink},
    client::{Client, KEY_FILE, with_peer},
    connection::Connection,
    error::{ClientError, DeviceError},
    flush::Flusher,
    net::{NetError, Network},
};

/// How often a device being linked asks its relay for its package.
pub const LINK_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long a device being linked waits for its package (the relay keeps one as long).
pub const LINK_WAIT: Duration = Duration::from_secs(10 * 60);

/// The name a device gets in the list when none is given.
const DEFAULT_DEVICE_NAME: &str = "device";

/// One device of this account, as `tidings device list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device.
    pub device: DeviceId,
    /// Its name in the list.
    pub name: String,
    /// When it was added to the list (ms since the Unix epoch).
    pub added_at_ms: u64,
    /// Whether it has a subscribed session at the home relay now.
    pub online: bool,
    /// When its last session ended, if the relay knows.
    pub last_seen_ms: Option<u64>,
    /// Whether it is the device asking.
    pub this_device: bool,
}

/// What approving a link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// The new device.
    pub device: DeviceId,
    /// The version of the list that names it.
    pub list_version: u64,
}

/// Checks that a list from the relay is this account's and verifies.
fn verified(list: SignedDeviceList, client: &Client) -> Result<SignedDeviceList, ClientError> {
    if list.list.user != client.user_id() {
        return Err(DeviceError::BadList(DeviceListError::WrongUser).into());
    }
    list.verify().map_err(DeviceError::BadList)?;
    Ok(list)
}

/// A list of `user`'s `devices` at `version`, with the name checks as a typed error.
fn new_list(
    client: &Client,
    version: u64,
    devices: Vec<DeviceEntry>,
) -> Result<DeviceList, ClientError> {
    DeviceList::new(client.user_id(), version, devices)
        .map_err(|error| DeviceError::BadName(error).into())
}

impl Client {
    /// Whether this device holds the account key (it can link and remove devices).
    pub fn holds_account_key(&self) -> bool {
        self.inner.identity.holds_account_key()
    }

    /// Creates `data_dir` with a new device of the account exported to `export`: the account
    /// key from the export (opened with `export_passphrase`), a fresh device key certified by
    /// it. On `register`, this device publishes the held list plus itself.
    pub fn init_import(
        data_dir: &Path,
        export: &Path,
        export_passphrase: &str,
        passphrase: Option<&str>,
    ) -> Result<Client, ClientError> {
        let identity = Identity::import_account(export, export_passphrase)?;
        Self::create(data_dir, identity, passphrase)
    }

    /// Saves `identity` as the key file of a new data dir and opens it.
    fn create(
        data_dir: &Path,
        identity: Identity,
        passphrase: Option<&str>,
    ) -> Result<Client, ClientError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ClientError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let key_file = data_dir.join(KEY_FILE);
        if key_file.exists() {
            return Err(ClientError::AlreadyInitialized(data_dir.to_path_buf()));
        }
        identity.save(&key_file, passphrase)?;
        Self::with_identity(data_dir, identity)
    }

    /// Writes the account key to `path`, sealed under `passphrase` (owner-only file).
    pub fn export_account(&self, path: &Path, passphrase: &str) -> Result<(), ClientError> {
        self.inner
            .identity
            .export_account(path, passphrase)
            .map_err(|error| DeviceError::Export(error).into())
    }

    async fn home_connection(&self) -> Result<Connection, ClientError> {
        let address = self.relay_addr()?.ok_or(ClientError::NotRegistered)?;
        self.open_connection(address).await
    }

    /// The account's list held at the home relay (verified), and what it knows of each device.
    /// The relay answers this before the device is registered too.
    pub(crate) async fn held_list(
        &self,
        connection: &Connection,
    ) -> Result<(Option<SignedDeviceList>, Vec<DeviceSeen>), ClientError> {
        let (list, seen) = connection
            .call(OwnDeviceList {
                user: self.user_id(),
            })
            .await?;
        let list = list.map(|list| verified(list, self)).transpose()?;
        Ok((list, seen))
    }

    /// Signs `list`, publishes it at the home relay and keeps it as this account's list here,
    /// so what this device sends from now on goes to the devices it names.
    async fn publish_list(
        &self,
        connection: &Connection,
        list: DeviceList,
    ) -> Result<SignedDeviceList, ClientError> {
        let signed = self.inner.identity.sign_device_list(list)?;
        connection.call(PublishDeviceList(signed.clone())).await?;
        let (me, kept) = (self.user_id(), signed.clone());
        let update = self
            .blocking(move |inner| inner.store.accept_device_list(&me, kept))
            .await?
            .map_err(DeviceError::BadList)?;
        // A device this list adds starts with our contacts, groups and recent history, as
        // one another device of ours publishes does (the later list refresh sees no change).
        let this = self.address().device;
        let joined: Vec<DeviceId> = update
            .added
            .into_iter()
            .filter(|device| *device != this)
            .collect();
        if !joined.is_empty() {
            let joined = joined.clone();
            self.blocking(move |inner| {
                inner.store.sync_to_new_device(me)?;
                for device in joined {
                    inner.store.queue_history(me, device)?;
                }
                Ok(())
            })
            .await?;
        }
        // Whoever encrypts to us learns of the change at our next flush rather than at their
        // next list check: a new device gets copies, a removed one no new group key.
        let version = signed.list.version;
        self.blocking(move |inner| inner.store.queue_devices_changed(me, version))
            .await?;
        // A removal is told at once. After an addition the flush waits for the new device to
        // publish its keys (a flush now would seal our other devices' copies without it).
        if joined.is_empty() {
            let flushed = Flusher {
                client: self,
                connection,
                events: &mut VecDeque::new(),
            }
            .flush_once()
            .await;
            if let Err(error) = flushed {
                tracing::info!(%error, "device list notices wait in the outbox");
            }
        }
        Ok(signed)
    }

    /// The list to register with, for a device holding the account key that the held list
    /// (`held`) does not name: the held list plus this device, one version up (or a first
    /// list of this device alone). `None` if the held list names it, or this device cannot
    /// sign lists.
    pub(crate) fn registration_list(
        &self,
        held: Option<&SignedDeviceList>,
        name: &str,
    ) -> Result<Option<SignedDeviceList>, ClientError> {
        let me = self.address().device;
        if !self.holds_account_key() || held.is_some_and(|list| list.contains(&me)) {
            return Ok(None);
        }
        let (version, mut devices) = match held {
            Some(held) => (held.list.version + 1, held.list.devices.to_vec()),
            None => (1, Vec::new()),
        };
        devices.push(DeviceEntry {
            device: me,
            name: name.to_string(),
            added_at_ms: now_ms(),
        });
        let list = new_list(self, version, devices)?;
        Ok(Some(self.inner.identity.sign_device_list(list)?))
    }

    /// Approves the device that shows `code`: publishes the held list plus that device (named
    /// `name`), then leaves it a package sealed with the code's secret. Needs the account key.
    pub async fn approve_link(
        &self,
        code: &LinkCode,
        name: Option<&str>,
    ) -> Result<Approved, ClientError> {
        if !self.holds_account_key() {
            return Err(NoAccountKey.into());
        }
        let card = self.card(None)?;
        let connection = self.home_connection().await?;
        let (held, _) = self.held_list(&connection).await?;
        let name = name.unwrap_or(DEFAULT_DEVICE_NAME);
        let me = self.address().device;
        let listed = match held {
            Some(held) if held.contains(&code.device) => held,
            held => {
                let (version, mut devices) = match held {
                    Some(held) => (held.list.version + 1, held.list.devices.into_vec()),
                    None => (
                        1,
                        vec![DeviceEntry {
                            device: me,
                            name: DEFAULT_DEVICE_NAME.into(),
                            added_at_ms: now_ms(),
                        }],
                    ),
                };
                devices.push(DeviceEntry {
                    device: code.device,
                    name: name.to_string(),
                    added_at_ms: now_ms(),
                });
                let list = new_list(self, version, devices)?;
                self.publish_list(&connection, list).await?
            }
        };
        let package = LinkPackage {
            cert: self.inner.identity.certify_device(code.device)?,
            user: self.user_id(),
            relay: card.relay,
            relay_addrs: card.addrs,
            approver: self.address(),
            name: name.to_string(),
            list_version: listed.list.version,
        };
        let sealed = link::seal_package(code, &package).map_err(DeviceError::Link)?;
        connection
            .call(PutLink {
                device: code.device,
                package: sealed,
            })
            .await?;
        Ok(Approved {
            device: code.device,
            list_version: listed.list.version,
        })
    }

    /// The account's devices as the home relay holds them, with online / last seen.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, ClientError> {
        let connection = self.home_connection().await?;
        let (held, seen) = self.held_list(&connection).await?;
        let me = self.address().device;
        Ok(held
            .map(|list| list.list.devices.into_vec())
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let seen = seen.iter().find(|seen| seen.device == entry.device);
                DeviceInfo {
                    device: entry.device,
                    name: entry.name,
                    added_at_ms: entry.added_at_ms,
                    online: seen.is_some_and(|seen| seen.online),
                    last_seen_ms: seen.and_then(|seen| seen.last_seen_ms),
                    this_device: entry.device == me,
                }
            })
            .collect())
    }

    /// Removes `device` from the account: publishes the held list without it, and the relay
    /// revokes it. Needs the account key. Returns the new list's version.
    pub async fn remove_device(&self, device: DeviceId) -> Result<u64, ClientError> {
        if !self.holds_account_key() {
            return Err(NoAccountKey.into());
        }
        if device == self.address().device {
            return Err(DeviceError::RemoveSelf.into());
        }
        let connection = self.home_connection().await?;
        let (held, _) = self.held_list(&connection).await?;
        let held = held
            .filter(|held| held.contains(&device))
            .ok_or(DeviceError::UnknownDevice(device))?;
        let devices = held
            .list
            .devices
            .into_vec()
            .into_iter()
            .filter(|entry| entry.device != device)
            .collect();
        let list = new_list(self, held.list.version + 1, devices)?;
        Ok(self.publish_list(&connection, list).await?.list.version)
    }
}

/// A device waiting to be linked: its fresh key, and a stream to the relay it waits at.
pub struct DeviceLink {
    pending: PendingLink,
    connection: Connection,
    address: Multiaddr,
}

impl DeviceLink {
    /// Makes a device key and link code, and connects to the relay at `address` with it.
    pub async fn start(address: Multiaddr) -> Result<DeviceLink, ClientError> {
        let pending = PendingLink::generate();
        let keypair = pending
            .libp2p_keypair()
            .map_err(|error| NetError::Transport(error.to_string()))?;
        let network = Network::start(keypair)?;
        let relay = network.dial(address.clone()).await?;
        let connection = Connection::open_redialling(&network, relay, address.clone()).await?;
        Ok(DeviceLink {
            pending,
            connection,
            address: with_peer(address, relay),
        })
    }

    /// The code to show on this device and type (or scan) on the approving one.
    pub fn code(&self) -> LinkCode {
        self.pending.code()
    }

    /// Asks the relay once for the package; `None` if none waits yet.
    pub async fn poll(&self) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self.connection.call(TakeLink).await?)
    }

    /// Waits (asking every [`LINK_POLL_INTERVAL`], up to `wait`) for the package, opens it,
    /// saves the linked identity in `data_dir` (encrypted with `passphrase` if given),
    /// registers at the relay and checks that the account's list there names this device.
    pub async fn finish(
        self,
        data_dir: &Path,
        passphrase: Option<&str>,
        wait: Duration,
    ) -> Result<(Client, LinkPackage), ClientError> {
        self.finish_with(wait, |identity| {
            std::future::ready(Client::create(data_dir, identity, passphrase))
        })
        .await
    }

    /// As [`DeviceLink::finish`], with the linked identity saved and its client opened by
    /// `create` (a browser keeps both in its own storage, reached asynchronously; see
    /// [`Client::with_store`]).
    pub async fn finish_with<Created>(
        self,
        wait: Duration,
        create: impl FnOnce(Identity) -> Created,
    ) -> Result<(Client, LinkPackage), ClientError>
    where
        Created: std::future::Future<Output = Result<Client, ClientError>>,
    {
        let deadline = crate::runtime::Instant::now() + wait;
        let sealed = loop {
            if let Some(sealed) = self.poll().await? {
                break sealed;
            }
            if crate::runtime::Instant::now() + LINK_POLL_INTERVAL > deadline {
                return Err(DeviceError::LinkTimedOut(wait).into());
            }
            crate::runtime::sleep(LINK_POLL_INTERVAL).await;
        };
        let (identity, package) = self.pending.open(&sealed).map_err(DeviceError::Link)?;
        let home = home_of(&package, &self.address).unwrap_or(self.address);
        drop(self.connection);
        let client = create(identity).await?;
        client.register(home.clone(), None).await?;
        let connection = client.open_connection(home).await?;
        let (held, _) = client.held_list(&connection).await?;
        match held {
            Some(list)
                if list.contains(&client.address().device)
                    && list.list.version >= package.list_version =>
            {
                Ok((client, package))
            }
            _ => Err(DeviceError::NotListed.into()),
        }
    }
}

/// The home relay's address: the one this device reached it at if the package names that
/// relay, else the package's first address this device can dial (a browser only a WebSocket
/// one), with its peer id.
fn home_of(package: &LinkPackage, dialled: &Multiaddr) -> Option<Multiaddr> {
    let relay: PeerId = package.relay.parse().ok()?;
    if crate::client::relay_peer(dialled) == Some(relay) {
        return Some(dialled.clone());
    }
    let address = package
        .relay_addrs
        .iter()
        .filter_map(|address| address.parse::<Multiaddr>().ok())
        .find(dialable_here)?;
    Some(with_peer(address, relay))
}

/// Whether this build can dial `address`: natively any, in the browser WebSocket ones only.
fn dialable_here(address: &Multiaddr) -> bool {
    cfg!(not(target_arch = "wasm32"))
        || address.iter().any(|protocol| {
            matches!(
                protocol,
                libp2p::multiaddr::Protocol::Ws(_) | libp2p::multiaddr::Protocol::Wss(_)
            )
        })
}
