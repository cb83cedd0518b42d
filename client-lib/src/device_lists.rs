//! Device lists on a connection: fetching a user's list (through the home relay, which asks
//! theirs), verifying it against the user and keeping it, and registering with our own.

use std::{collections::VecDeque, sync::atomic::Ordering};

use tidings_protocol::{
    Address, DeviceEntry, DeviceId, DeviceList, ErrorCode, MailboxItem, Recipient,
    SignedDeviceList, UserId,
    client::{Delivery, Register},
    now_ms,
};

use crate::{
    calls::{GetDeviceList, PublishDeviceList, Registered},
    client::Client,
    connection::{Connection, ConnectionError},
    error::ClientError,
    events::Event,
    store::HistorySync,
};

/// The name this device gives itself on the list when it lists itself.
const DEFAULT_DEVICE_NAME: &str = "tidings device";

/// Asks for `user`'s device list and keeps it if it verifies and is not older than the held
/// one. A refused list is logged, counted and reported as an event, and the held one stays.
/// Returns the list now held (`None`: none anywhere).
pub(crate) async fn refresh_list(
    client: &Client,
    connection: &Connection,
    user: UserId,
    events: &mut VecDeque<Event>,
) -> Result<Option<SignedDeviceList>, ClientError> {
    client.inner.list_lookups.fetch_add(1, Ordering::Relaxed);
    let fetched = match connection.call(GetDeviceList { user }).await {
        Ok(held) => {
            client.inner.list_checks.checked(user);
            held.list
        }
        Err(ConnectionError::Refused(answer)) => {
            tracing::info!(%user, %answer, "device list not available now");
            client.inner.list_checks.failed(user);
            None
        }
        Err(error) => return Err(error.into()),
    };
    let Some(list) = fetched else {
        return client
            .blocking(move |inner| inner.store.device_list(&user))
            .await;
    };
    let taken = client
        .blocking(move |inner| inner.store.accept_device_list(&user, list))
        .await?;
    match taken {
        Ok(update) => {
            let me = client.address();
            let joined: Vec<DeviceId> = update
                .added
                .iter()
                .copied()
                .filter(|device| *device != me.device)
                .collect();
            if user == me.user && !joined.is_empty() {
                // A device joined our account: it starts with our contacts, groups and
                // recent history.
                client
                    .blocking(move |inner| {
                        inner.store.sync_to_new_device(me.user)?;
                        for device in joined {
                            inner.store.queue_history(me.user, device)?;
                        }
                        Ok(())
                    })
                    .await?;
            }
            Ok(Some(update.list))
        }
        Err(reason) => {
            tracing::warn!(%user, %reason, "refusing a device list");
            client.inner.refused_lists.fetch_add(1, Ordering::Relaxed);
            events.push_back(Event::DeviceListRefused { user, reason });
            client
                .blocking(move |inner| inner.store.device_list(&user))
                .await
        }
    }
}

/// The devices of `user` on the held list, asking for the list first unless it was asked for
/// in this run less than `LIST_MAX_AGE` ago (or, when that lookup failed, less than
/// `LIST_RETRY_AFTER` ago: a user whose home relay is away, and of whom no list is held,
/// would otherwise make every send wait on the lookup anew).
pub(crate) async fn devices_of(
    client: &Client,
    connection: &Connection,
    user: UserId,
    events: &mut VecDeque<Event>,
) -> Result<Vec<Address>, ClientError> {
    let held = client
        .blocking(move |inner| inner.store.device_list(&user))
        .await?;
    let list = if client.inner.list_checks.is_fresh(&user) {
        held
    } else {
        refresh_list(client, connection, user, events).await?
    };
    Ok(list
        .map(|list| {
            list.list
                .devices
                .iter()
                .map(|entry| Address {
                    user,
                    device: entry.device,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Before a pushed batch is stored: refreshes the list of every user who sent a direct
/// envelope from a device their held list does not name (a device added since, or a user
/// never asked about), so it is accepted only if the refreshed list names it.
pub(crate) async fn refresh_for_senders(
    client: &Client,
    connection: &Connection,
    items: &[Delivery],
    events: &mut VecDeque<Event>,
) -> Result<(), ClientError> {
    let mut senders: Vec<Address> = items
        .iter()
        .filter_map(|item| match &item.item {
            MailboxItem::Envelope(raw) => raw.decode_unverified().ok(),
            MailboxItem::Bounce(_) => None,
        })
        .filter(|envelope| matches!(envelope.recipient, Recipient::Direct(_)))
        .map(|envelope| envelope.sender)
        .collect();
    senders.sort_unstable_by_key(|sender| (sender.user, sender.device));
    senders.dedup();
    let unknown = client
        .blocking(move |inner| {
            let mut unknown = Vec::new();
            for sender in senders {
                let listed = inner
                    .store
                    .device_list(&sender.user)?
                    .is_some_and(|list| list.contains(&sender.device));
                if !listed && !unknown.contains(&sender.user) {
                    unknown.push(sender.user);
                }
            }
            Ok(unknown)
        })
        .await?;
    for user in unknown {
        refresh_list(client, connection, user, events).await?;
    }
    Ok(())
}

impl Client {
    /// How much recent history a device that joins the account gets from this one (default
    /// 30 days or 10,000 messages).
    pub fn set_history_sync(&self, sync: HistorySync) -> Result<(), ClientError> {
        Ok(self.inner.store.set_history_sync(sync)?)
    }

    /// How many device lists this client refused (forged, stale, another user's) since it
    /// started.
    pub fn refused_device_lists(&self) -> u64 {
        self.inner.refused_lists.load(Ordering::Relaxed)
    }

    /// How many device lists this client asked its relay for since it started.
    pub fn device_list_lookups(&self) -> u64 {
        self.inner.list_lookups.load(Ordering::Relaxed)
    }

    /// The list to register with: the held one if it names this device, else one more
    /// version of it (or a first one) that adds this device, signed by the account key.
    /// `None` on a device without the account key (the held list must name it already).
    fn list_naming_me(&self) -> Result<Option<SignedDeviceList>, ClientError> {
        let identity = &self.inner.identity;
        let held = self.inner.store.device_list(&identity.user_id())?;
        if let Some(list) = held.as_ref()
            && list.contains(&identity.device_id())
        {
            return Ok(Some(list.clone()));
        }
        let (version, mut devices) = match held {
            Some(list) => (list.list.version + 1, list.list.devices.into_vec()),
            None => (1, Vec::new()),
        };
        devices.push(DeviceEntry {
            device: identity.device_id(),
            name: DEFAULT_DEVICE_NAME.into(),
            added_at_ms: now_ms(),
        });
        let list = DeviceList::new(identity.user_id(), version, devices)
            .map_err(ClientError::DeviceList)?;
        Ok(identity.sign_device_list(list).ok())
    }

    /// Registers this device on `connection` with a device list naming it when it holds the
    /// account key (the relay takes it if it holds none or an older one), else (or when the
    /// relay holds a newer one) on the list the relay holds; then keeps the relay's list and
    /// gives a relay that holds none ours.
    pub(crate) async fn register_device(
        &self,
        connection: &Connection,
        invite: Option<String>,
    ) -> Result<Registered, ClientError> {
        let list = self.list_naming_me()?;
        let cert = self.inner.identity.cert().clone();
        let register = |list: Option<SignedDeviceList>| Register {
            cert: cert.clone(),
            invite: invite.clone(),
            list: list.map(Box::new),
        };
        let registered = match connection.call(register(list.clone())).await {
            Err(ConnectionError::Refused(answer))
                if answer.code == ErrorCode::StaleDeviceList && list.is_some() =>
            {
                // The relay holds a newer list (another device changed it, or this one was
                // restored from an export): register on it, plus this device if it lacks it.
                let (held, _) = self.held_list(connection).await?;
                let list = self.registration_list(held.as_ref(), DEFAULT_DEVICE_NAME)?;
                connection.call(register(list)).await?
            }
            other => other?,
        };
        let me = self.user_id();
        let mut ignored = VecDeque::new();
        let held = refresh_list(self, connection, me, &mut ignored).await?;
        let behind = match (&list, &held) {
            (Some(mine), Some(held)) => held.list.version < mine.list.version,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if let (true, Some(mine)) = (behind, list) {
            // A relay that holds no list of ours (we moved home) or an older one gets ours.
            if let Some(published) = connection.call(PublishDeviceList(mine)).await? {
                self.blocking(move |inner| inner.store.accept_device_list(&me, published))
                    .await?
                    .map_err(ClientError::DeviceList)?;
            }
        }
        Ok(registered)
    }
}
