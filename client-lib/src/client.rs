//! [`Client`]: one user's device: its identity and local store, and the network it opens
//! connections to its relays on. Everything that talks to a relay sits above it.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use tidings_keys::Identity;
use tidings_protocol::{
    Address, BoundedVec, ContactCard, UserId,
    limits::{MAX_CARD_ADDRS, MAX_TEXT_BYTES},
};

use crate::{
    connection::Connection,
    error::ClientError,
    net::{NetError, Network},
    store::{ClientStore, Conversation, MessageRecord, StoreError, tables::META_RELAY_ADDR},
};

/// File name of the key file inside the data dir.
pub const KEY_FILE: &str = "identity.key";

pub(crate) struct Inner {
    pub identity: Identity,
    /// Where the key file, the store and media in transit live.
    pub data_dir: PathBuf,
    pub store: ClientStore,
    network: tokio::sync::OnceCell<Network>,
    /// Held while a session flushes the outbox.
    pub flushing: Arc<tokio::sync::Mutex<()>>,
    /// Device lists refused since the client started.
    pub refused_lists: std::sync::atomic::AtomicU64,
    /// Device lists asked for since start.
    pub list_lookups: std::sync::atomic::AtomicU64,
    /// When each user's device list was last asked for.
    pub list_checks: crate::list_checks::ListChecks,
}

/// One user's device. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Creates a new identity and store in `data_dir` (the key file is encrypted with
    /// `passphrase` if given).
    pub fn init(data_dir: &Path, passphrase: Option<&str>) -> Result<Client, ClientError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ClientError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let key_file = data_dir.join(KEY_FILE);
        if key_file.exists() {
            return Err(ClientError::AlreadyInitialized(data_dir.to_path_buf()));
        }
        let identity = Identity::generate();
        identity.save(&key_file, passphrase)?;
        Self::with_identity(data_dir, identity)
    }

    /// Opens the identity and store in `data_dir`.
    pub fn open(data_dir: &Path, passphrase: Option<&str>) -> Result<Client, ClientError> {
        let key_file = data_dir.join(KEY_FILE);
        if !key_file.exists() {
            return Err(ClientError::NotInitialized(data_dir.to_path_buf()));
        }
        let identity = Identity::load(&key_file, passphrase)?;
        Self::with_identity(data_dir, identity)
    }

    /// Another device of this account in `data_dir` (a new device key certified by the
    /// account key, as a device restored from an account export holds), knowing this
    /// device's list of the account's devices, so it registers with one naming both.
    #[cfg(feature = "test-utils")]
    pub fn init_another_device(&self, data_dir: &Path) -> Result<Client, ClientError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ClientError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let identity = self.inner.identity.another_device();
        identity.save(&data_dir.join(KEY_FILE), None)?;
        let client = Self::with_identity(data_dir, identity)?;
        let me = self.user_id();
        if let Some(list) = self.inner.store.device_list(&me)? {
            client.inner.store.accept_device_list(&me, list)??;
        }
        Ok(client)
    }

    pub(crate) fn with_identity(
        data_dir: &Path,
        identity: Identity,
    ) -> Result<Client, ClientError> {
        let store = ClientStore::open(data_dir, identity.store_key())?;
        Ok(Self::with_store(data_dir, identity, store))
    }

    /// A device from an identity and a store opened by the caller (the browser keeps both
    /// in its own storage: [`Identity::from_file_bytes`], [`ClientStore::open_backend`]).
    /// `data_dir` is where media files in transit would live; the browser has none yet.
    pub fn with_store(data_dir: &Path, identity: Identity, store: ClientStore) -> Client {
        Client {
            inner: Arc::new(Inner {
                identity,
                data_dir: data_dir.to_path_buf(),
                store,
                network: tokio::sync::OnceCell::new(),
                flushing: Arc::new(tokio::sync::Mutex::new(())),
                refused_lists: std::sync::atomic::AtomicU64::new(0),
                list_lookups: std::sync::atomic::AtomicU64::new(0),
                list_checks: crate::list_checks::ListChecks::default(),
            }),
        }
    }

    /// This user's id.
    pub fn user_id(&self) -> UserId {
        self.inner.identity.user_id()
    }

    /// This device's address.
    pub fn address(&self) -> Address {
        self.inner.identity.address()
    }

    /// The local store (history, contacts, outbox).
    pub fn store(&self) -> &ClientStore {
        &self.inner.store
    }

    /// Runs a store operation on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ClientError> {
        self.spawn_blocking(work)
            .await
            .map_err(|_| ClientError::Cancelled)?
            .map_err(ClientError::from)
    }

    /// Starts `work` on the blocking pool. The handle can be awaited again after an await
    /// of it was cancelled; the work runs to its end either way.
    pub(crate) fn spawn_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> crate::runtime::JoinHandle<Result<T, StoreError>> {
        let inner = self.inner.clone();
        crate::runtime::spawn_blocking(move || work(&inner))
    }

    /// The home relay's dial address, once registered.
    pub fn relay_addr(&self) -> Result<Option<Multiaddr>, ClientError> {
        let Some(bytes) = self.inner.store.meta(META_RELAY_ADDR)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes).to_string();
        text.parse()
            .map(Some)
            .map_err(|_| ClientError::BadAddress(text))
    }

    /// This user's contact card, suggesting `name` as display name.
    pub fn card(&self, name: Option<String>) -> Result<ContactCard, ClientError> {
        let address = self.relay_addr()?.ok_or(ClientError::NotRegistered)?;
        let relay = relay_peer(&address).ok_or(ClientError::NotRegistered)?;
        let bare: Multiaddr = address
            .iter()
            .filter(|protocol| !matches!(protocol, Protocol::P2p(_)))
            .collect();
        let mut addrs = vec![bare.to_string()];
        addrs.truncate(MAX_CARD_ADDRS);
        Ok(ContactCard {
            user: self.user_id(),
            name,
            relay: relay.to_string(),
            addrs: BoundedVec::new(addrs).unwrap_or_default(),
        })
    }

    /// Saves a contact under a local name (our other devices learn it on the next flush).
    pub fn add_contact(&self, name: &str, card: &ContactCard) -> Result<(), ClientError> {
        Ok(self
            .inner
            .store
            .add_contact_synced(self.user_id(), name, card)?)
    }

    /// Renames a contact (here and, on the next flush, on our other devices).
    pub fn rename_contact(&self, name: &str, new_name: &str) -> Result<(), ClientError> {
        Ok(self
            .inner
            .store
            .rename_contact(self.user_id(), name, new_name)?)
    }

    /// Removes a contact (here and, on the next flush, on our other devices).
    pub fn remove_contact(&self, name: &str) -> Result<(), ClientError> {
        Ok(self.inner.store.remove_contact(self.user_id(), name)?)
    }

    /// A group name, contact name, group id or user id, to the conversation it means.
    pub fn conversation(&self, who: &str) -> Result<Conversation, ClientError> {
        if let Some(card) = self.inner.store.contact(who)? {
            return Ok(Conversation::Direct(card.user));
        }
        let groups = self.inner.store.groups()?;
        let named: Vec<_> = groups
            .iter()
            .filter(|group| {
                group.descriptor.name == who || group.descriptor.group.to_string() == who
            })
            .collect();
        match named.as_slice() {
            [one] => return Ok(Conversation::Group(one.descriptor.group)),
            [] => {}
            _ => return Err(ClientError::AmbiguousGroup(who.to_string())),
        }
        who.parse()
            .map(Conversation::Direct)
            .map_err(|_| ClientError::UnknownContact(who.to_string()))
    }

    /// A contact name, or a user id, to the user it means.
    pub fn resolve(&self, who: &str) -> Result<UserId, ClientError> {
        if let Some(card) = self.inner.store.contact(who)? {
            return Ok(card.user);
        }
        who.parse()
            .map_err(|_| ClientError::UnknownContact(who.to_string()))
    }

    /// The users some contact names or user ids mean.
    pub(crate) fn resolve_all(&self, who: &[&str]) -> Result<Vec<UserId>, ClientError> {
        who.iter().map(|w| self.resolve(w)).collect()
    }

    /// How a user is shown: their contact name, else a short form of their id.
    pub fn display_name(&self, user: &UserId) -> String {
        if *user == self.user_id() {
            return "me".into();
        }
        match self.inner.store.contact_name(user) {
            Ok(Some(name)) => match self.inner.store.profile_name(user) {
                Ok(Some(profile)) if profile != name => format!("{name} ({profile})"),
                _ => name,
            },
            _ => {
                let text = user.to_string();
                format!("{}…", &text[..text.len().min(10)])
            }
        }
    }

    /// A conversation (contact, group, or id), oldest first.
    pub fn history(&self, who: &str) -> Result<Vec<MessageRecord>, ClientError> {
        let conversation = self.conversation(who)?;
        Ok(self.inner.store.history(&conversation)?)
    }

    /// Stores a text for `who` (a contact or a group) as pending; it is sent on the next
    /// flush (works offline).
    pub async fn queue_text(&self, who: &str, text: &str) -> Result<MessageRecord, ClientError> {
        self.queue_texts(who, vec![text.to_string()])
            .await?
            .pop()
            .ok_or(ClientError::Internal("queueing a text stored nothing"))
    }

    /// Records several texts to `who` and queues them, in order, in one local commit (sent
    /// on the next flush).
    pub async fn queue_texts(
        &self,
        who: &str,
        texts: Vec<String>,
    ) -> Result<Vec<MessageRecord>, ClientError> {
        if let Some(text) = texts.iter().find(|text| text.len() > MAX_TEXT_BYTES) {
            return Err(ClientError::TextTooLong(text.len()));
        }
        let conversation = self.conversation(who)?;
        let me = self.user_id();
        self.blocking(move |inner| inner.store.queue_texts(me, conversation, texts))
            .await
    }

    /// Marks everything from `who` read and queues the read receipt (sent on the next flush);
    /// returns how many messages.
    pub async fn mark_read(&self, who: &str) -> Result<usize, ClientError> {
        let conversation = self.conversation(who)?;
        let me = self.user_id();
        let ids = self
            .blocking(move |inner| inner.store.mark_read(me, &conversation))
            .await?;
        Ok(ids.len())
    }

    /// The data dir this client lives in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub(crate) async fn network(&self) -> Result<&Network, ClientError> {
        let identity = &self.inner.identity;
        self.inner
            .network
            .get_or_try_init(|| async {
                let keypair = identity
                    .libp2p_keypair()
                    .map_err(|error| NetError::Transport(error.to_string()))?;
                #[cfg(not(target_arch = "wasm32"))]
                let trusted = crate::websocket::trusted_certs(&self.inner.data_dir)
                    .map_err(|error| NetError::Transport(error.to_string()))?;
                // The browser checks `/tls/ws` certificates itself.
                #[cfg(target_arch = "wasm32")]
                let trusted = Vec::new();
                Network::start_trusting(keypair, &trusted)
            })
            .await
            .map_err(ClientError::from)
    }

    pub(crate) async fn open_connection(
        &self,
        address: Multiaddr,
    ) -> Result<Connection, ClientError> {
        let network = self.network().await?;
        let relay = network.dial(address.clone()).await?;
        Ok(Connection::open_redialling(network, relay, address).await?)
    }
}

/// The peer id in a `/p2p/...` address.
pub fn relay_peer(address: &Multiaddr) -> Option<PeerId> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

pub(crate) fn with_peer(address: Multiaddr, peer: PeerId) -> Multiaddr {
    if relay_peer(&address).is_some() {
        address
    } else {
        address.with(Protocol::P2p(peer))
    }
}
