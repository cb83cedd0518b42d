//! The user's home relay: registering there, signing home records, keeping them fresh, and
//! moving home.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tidings_protocol::{
    BoundedVec, HomeRecord, codec,
    home::HOME_RECORD_LIFETIME_MS,
    limits::{MAX_CARD_ADDRS, MAX_HOME_RECORD_BYTES},
    now_ms,
};

use crate::{
    calls::PublishHome,
    client::{Client, relay_peer, with_peer},
    connection::Connection,
    error::ClientError,
    key_upload::publish_keys,
    store::tables::{META_HOME_RECORD, META_KEYS_PUBLISHED, META_MOVE_NOTICE, META_RELAY_ADDR},
};

/// How long telling the previous home about a move may take before it is left for later.
const MOVE_NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// What moving home did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The new home relay.
    pub relay: PeerId,
    /// Whether the previous home already knows (it then hands on what it held); if not, the
    /// next `connect` tells it.
    pub previous_told: bool,
}

/// What registering returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The relay's peer id.
    pub relay: PeerId,
    /// False if this device was already registered there.
    pub new: bool,
}

async fn publish(connection: &Connection, record: &HomeRecord) -> Result<(), ClientError> {
    Ok(connection.call(PublishHome(record.clone())).await?)
}

impl Client {
    /// The newest home record this user signed.
    pub fn home_record(&self) -> Result<Option<HomeRecord>, ClientError> {
        let Some(bytes) = self.inner.store.meta(META_HOME_RECORD)? else {
            return Ok(None);
        };
        codec::decode(&bytes, MAX_HOME_RECORD_BYTES)
            .map(Some)
            .map_err(ClientError::CorruptHomeRecord)
    }

    /// Signs a record naming `relay` as home, with a sequence number above every earlier one
    /// (the clock in ms, so even a reinstalled client outranks its old records).
    pub(crate) fn sign_home(
        &self,
        relay: PeerId,
        addrs: BoundedVec<String, MAX_CARD_ADDRS>,
    ) -> Result<HomeRecord, ClientError> {
        let previous = self.home_record()?.map(|record| record.seq).unwrap_or(0);
        let now = now_ms();
        let record = self.inner.identity.sign_home_record(
            relay.to_string(),
            addrs,
            now.max(previous + 1),
            now + HOME_RECORD_LIFETIME_MS,
        )?;
        self.inner
            .store
            .set_meta(META_HOME_RECORD, &codec::encode(&record))?;
        Ok(record)
    }

    /// Registers this device at the relay at `address` (with an invite code if the relay asks
    /// for one), makes it the home relay and publishes this device's keys.
    pub async fn register(
        &self,
        address: Multiaddr,
        invite: Option<String>,
    ) -> Result<Registration, ClientError> {
        let connection = self.open_connection(address.clone()).await?;
        let relay = connection.relay();
        let registered = self.register_device(&connection, invite).await?;
        // A linked device cannot sign home records; the device holding the account key did.
        if self.holds_account_key() {
            let record = self.sign_home(relay, registered.relay_addrs)?;
            publish(&connection, &record).await?;
        }
        let address = with_peer(address, relay);
        self.inner
            .store
            .set_meta(META_RELAY_ADDR, address.to_string().as_bytes())?;
        publish_keys(self, &connection).await?;
        Ok(Registration {
            relay,
            new: registered.new,
        })
    }

    /// Makes the relay at `address` this user's home: registers there, publishes a newer home
    /// record, and tells the previous home, which hands on everything it still holds for us.
    pub async fn move_home(
        &self,
        address: Multiaddr,
        invite: Option<String>,
    ) -> Result<Moved, ClientError> {
        if !self.holds_account_key() {
            return Err(tidings_keys::NoAccountKey.into());
        }
        let previous = self.relay_addr()?.ok_or(ClientError::NotRegistered)?;
        let connection = self.open_connection(address.clone()).await?;
        let relay = connection.relay();
        if Some(relay) == relay_peer(&previous) {
            return Err(ClientError::AlreadyHome);
        }
        let registered = self.register_device(&connection, invite).await?;
        let record = self.sign_home(relay, registered.relay_addrs)?;
        publish(&connection, &record).await?;
        let address = with_peer(address, relay);
        let store = &self.inner.store;
        store.set_meta(META_MOVE_NOTICE, previous.to_string().as_bytes())?;
        store.set_meta(META_RELAY_ADDR, address.to_string().as_bytes())?;
        store.set_meta(META_KEYS_PUBLISHED, b"")?;
        publish_keys(self, &connection).await?;
        // Contacts ask the new home for our profile now: store it there.
        store.own_profile_to_store_again()?;
        crate::profile::sync::before_flush(self, &connection).await;
        drop(connection);
        let previous_told = self.tell_previous_home().await;
        Ok(Moved {
            relay,
            previous_told,
        })
    }

    /// Tells the previous home relay about a move, if that is still pending; true once done.
    pub(crate) async fn tell_previous_home(&self) -> bool {
        let notice = match self.inner.store.meta(META_MOVE_NOTICE) {
            Ok(Some(notice)) if !notice.is_empty() => notice,
            _ => return true,
        };
        let Ok(previous) = String::from_utf8_lossy(&notice).parse::<Multiaddr>() else {
            return true;
        };
        let Ok(Some(record)) = self.home_record() else {
            return false;
        };
        let told = crate::runtime::timeout(MOVE_NOTICE_TIMEOUT, async {
            let connection = self.open_connection(previous).await?;
            publish(&connection, &record).await
        })
        .await;
        match told {
            Ok(Ok(())) => self.inner.store.set_meta(META_MOVE_NOTICE, b"").is_ok(),
            Ok(Err(error)) => {
                tracing::info!(%error, "the previous home relay was not told of the move yet");
                false
            }
            Err(_) => false,
        }
    }
}

/// Re-signs the home record when half of its lifetime has passed, and publishes it on
/// `connection`.
pub(crate) async fn refresh_home(
    client: &Client,
    connection: &Connection,
) -> Result<(), ClientError> {
    let Some(record) = client.home_record()? else {
        return Ok(());
    };
    if record.expires_at_ms > now_ms() + HOME_RECORD_LIFETIME_MS / 2 {
        return Ok(());
    }
    let Ok(relay) = record.relay.parse::<PeerId>() else {
        return Ok(());
    };
    let fresh = client.sign_home(relay, record.addrs)?;
    publish(connection, &fresh).await
}
