//! Status updates (24 hours): post one to an audience, fetch and view contacts' (sending
//! "seen" to the poster only), and see who saw ours. Encryption: one Megolm session of this
//! device for its statuses, its key sent over Olm to the audience's devices, a new session
//! whenever someone who held the key is left out.

mod calls;
pub(crate) mod error;
mod media;
mod own;

use std::{collections::VecDeque, time::Duration};

use tidings_protocol::{
    Address, BlobRef, BoundedVec, EnvelopeId, UserId,
    limits::{MAX_BATCH_ENVELOPES, MAX_TEXT_BYTES},
    media::MediaMessage,
    status::{
        Clock, MAX_STATUS_AUDIENCE, MAX_STATUSES_PER_ANSWER, OwnStatus, STATUS_LIFETIME_MS,
        StatusItem, StatusPost,
    },
};

pub use calls::{GetStatuses, PostStatus};
pub use error::StatusError;
pub use tidings_protocol::status::Clock as StatusClock;

use crate::{
    calls::Send,
    client::Client,
    device_lists::refresh_list,
    error::ClientError,
    olm_sessions::reach,
    session::Session,
    store::status::{MyStatus, ReceivedStatus},
};

/// How long fetching waits for the mailbox (the key shares) to catch up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Most pages of statuses one fetch asks for.
const MAX_FETCH_PAGES: usize = 16;

/// Who a status is shown to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every contact.
    Contacts,
    /// Only these contacts.
    Only(Vec<String>),
    /// Every contact except these.
    Except(Vec<String>),
}

/// What posting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedStatus {
    /// The status id.
    pub id: EnvelopeId,
    /// When it expires everywhere.
    pub expires_at_ms: u64,
    /// How many people it is for.
    pub audience: usize,
    /// Devices sent the session key now.
    pub keys_sent: usize,
    /// Devices (or users without a known device) that could not get the key now.
    pub unreachable: usize,
}

/// Whose statuses wait, for `status list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSummary {
    /// The poster.
    pub poster: UserId,
    /// Their statuses held (unexpired).
    pub total: usize,
    /// Of them, not viewed yet.
    pub unseen: usize,
    /// When the newest was posted.
    pub newest_ms: u64,
}

impl Client {
    /// The users an audience names.
    pub fn status_audience(&self, audience: &Audience) -> Result<Vec<UserId>, ClientError> {
        let contacts: Vec<UserId> = self
            .store()
            .contacts()?
            .into_iter()
            .map(|(_, card)| card.user)
            .collect();
        let mut users = match audience {
            Audience::Contacts => contacts,
            Audience::Only(names) => names
                .iter()
                .map(|name| self.resolve(name))
                .collect::<Result<_, _>>()?,
            Audience::Except(names) => {
                let left_out: Vec<UserId> = names
                    .iter()
                    .map(|name| self.resolve(name))
                    .collect::<Result<_, _>>()?;
                contacts
                    .into_iter()
                    .filter(|user| !left_out.contains(user))
                    .collect()
            }
        };
        let me = self.user_id();
        users.retain(|user| *user != me);
        users.sort_unstable();
        users.dedup();
        if users.is_empty() {
            return Err(StatusError::NoAudience.into());
        }
        if users.len() > MAX_STATUS_AUDIENCE {
            return Err(StatusError::AudienceTooLarge(users.len()).into());
        }
        Ok(users)
    }

    /// [`Session::post_status`] on a connection of its own.
    pub async fn post_status(
        &self,
        clock: &Clock,
        text: &str,
        audience: &Audience,
    ) -> Result<PostedStatus, ClientError> {
        let mut session = self.connect().await?;
        let posted = session.post_status(clock, text, audience).await;
        session.close().await;
        posted
    }

    /// [`Session::post_status_for`] on a connection of its own.
    pub async fn post_status_for(
        &self,
        clock: &Clock,
        text: &str,
        audience: &Audience,
        lifetime_ms: u64,
    ) -> Result<PostedStatus, ClientError> {
        let mut session = self.connect().await?;
        let posted = session
            .post_status_for(clock, text, audience, lifetime_ms)
            .await;
        session.close().await;
        posted
    }

    /// [`Session::status_overview`] on a connection of its own.
    pub async fn status_overview(&self, clock: &Clock) -> Result<Vec<StatusSummary>, ClientError> {
        let mut session = self.connect().await?;
        let overview = session.status_overview(clock).await;
        session.close().await;
        overview
    }

    /// [`Session::view_statuses`] on a connection of its own.
    pub async fn view_statuses(
        &self,
        clock: &Clock,
        who: &str,
    ) -> Result<Vec<ReceivedStatus>, ClientError> {
        let mut session = self.connect().await?;
        let shown = session.view_statuses(clock, who).await;
        session.close().await;
        shown
    }

    /// [`Session::my_statuses`] on a connection of its own.
    pub async fn my_statuses(&self, clock: &Clock) -> Result<Vec<MyStatus>, ClientError> {
        let mut session = self.connect().await?;
        let mine = session.my_statuses(clock).await;
        session.close().await;
        mine
    }
}

impl Session {
    /// Posts a status to `audience`: shares this device's status session key with the
    /// audience's devices that lack it (a new session first if someone who had it is left
    /// out), then hands the one ciphertext to the home relay, to expire in 24 hours.
    pub async fn post_status(
        &mut self,
        clock: &Clock,
        text: &str,
        audience: &Audience,
    ) -> Result<PostedStatus, ClientError> {
        self.post_status_for(clock, text, audience, STATUS_LIFETIME_MS)
            .await
    }

    /// As [`Session::post_status`], expiring after `lifetime_ms` (at most 24 hours; tools
    /// use shorter ones to watch expiry happen).
    pub async fn post_status_for(
        &mut self,
        clock: &Clock,
        text: &str,
        audience: &Audience,
        lifetime_ms: u64,
    ) -> Result<PostedStatus, ClientError> {
        if text.trim().is_empty() {
            return Err(StatusError::Empty.into());
        }
        self.post_sealed_status(clock, text, None, audience, lifetime_ms)
            .await
    }

    /// Shares the session key where needed, seals `text` (and `media`, an uploaded picture
    /// or video whose blob the post names in clear) and posts it.
    async fn post_sealed_status(
        &mut self,
        clock: &Clock,
        text: &str,
        media: Option<MediaMessage>,
        audience: &Audience,
        lifetime_ms: u64,
    ) -> Result<PostedStatus, ClientError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(ClientError::TextTooLong(text.len()));
        }
        let client = self.client().clone();
        let users = client.status_audience(audience)?;
        let mut events = VecDeque::new();
        for user in users
            .iter()
            .copied()
            .chain(std::iter::once(client.user_id()))
        {
            if !client.inner.list_checks.is_fresh(&user) {
                refresh_list(&client, self.connection(), user, &mut events).await?;
            }
        }
        let audience_users = users.clone();
        let plan = client
            .blocking(move |inner| {
                inner
                    .store
                    .plan_status_key(&inner.identity, &audience_users)
            })
            .await?;
        let reached = reach(&client, self.connection(), plan.need).await?;
        let mut keys_sent = 0;
        for chunk in reached.ready.chunks(MAX_BATCH_ENVELOPES) {
            let (chunk, key) = (chunk.to_vec(), plan.session_key.clone());
            let sealed = client
                .blocking(move |inner| inner.store.seal_status_keys(&inner.identity, &key, &chunk))
                .await?;
            let (devices, envelopes): (Vec<Address>, Vec<_>) = sealed.into_iter().unzip();
            let outcomes = self.send(envelopes, "status key shares").await?;
            let shared: Vec<Address> = devices
                .into_iter()
                .zip(outcomes)
                .filter_map(|(device, stored)| stored.then_some(device))
                .collect();
            keys_sent += shared.len();
            client
                .blocking(move |inner| inner.store.mark_status_key_shared(&shared))
                .await?;
        }
        let id = EnvelopeId::new();
        let expires_at_ms = clock.now_ms() + lifetime_ms.clamp(1, STATUS_LIFETIME_MS);
        let own_media = media.clone().map(Box::new);
        let (sealed_text, audience_users) = (text.to_string(), users.clone());
        let blobs: Vec<BlobRef> = media.iter().map(|media| media.blob.clone()).collect();
        let body = client
            .blocking(move |inner| {
                inner.store.seal_status(
                    &inner.identity,
                    id,
                    &sealed_text,
                    media.as_ref(),
                    expires_at_ms,
                    &audience_users,
                )
            })
            .await?;
        let blobs = BoundedVec::new(blobs).map_err(|source| ClientError::TooMany {
            what: "status media",
            source,
        })?;
        let own = OwnStatus {
            id,
            expires_at_ms,
            audience: BoundedVec::new(users.clone()).map_err(|source| ClientError::TooMany {
                what: "status audience",
                source,
            })?,
            text: text.to_string(),
            media: own_media,
        };
        // Before the post: our other devices know the status before any receipt for it.
        if let Err(error) = self.tell_own_devices(own).await {
            tracing::warn!(%error, "our other devices could not hear of a status");
        }
        let audience = BoundedVec::new(users.clone()).map_err(|source| ClientError::TooMany {
            what: "status audience",
            source,
        })?;
        let post = StatusPost {
            id,
            audience,
            expires_at_ms,
            body,
            blobs,
        };
        self.connection().call(PostStatus(post)).await?;
        Ok(PostedStatus {
            id,
            expires_at_ms,
            audience: users.len(),
            keys_sent,
            unreachable: reached.unreachable.len() + plan.unlisted.len(),
        })
    }

    /// The statuses the home relay hands this user (still encrypted), stored after
    /// `after_ms`: what a relay lets this user fetch, for tools that check it.
    pub async fn fetch_status_items(&self, after_ms: u64) -> Result<Vec<StatusItem>, ClientError> {
        Ok(self
            .connection()
            .call(GetStatuses { after_ms })
            .await?
            .into_vec())
    }

    async fn send(
        &self,
        envelopes: Vec<tidings_protocol::RawEnvelope>,
        what: &'static str,
    ) -> Result<Vec<bool>, ClientError> {
        let envelopes =
            BoundedVec::new(envelopes).map_err(|source| ClientError::TooMany { what, source })?;
        let outcomes = self.connection().call(Send { envelopes }).await?;
        Ok(outcomes.iter().map(|outcome| outcome.is_stored()).collect())
    }

    /// Receives what waits (status keys, seen receipts), deletes expired statuses here and
    /// takes the new ones the relay holds for this user; how many were new.
    pub async fn refresh_statuses(&mut self, clock: &Clock) -> Result<usize, ClientError> {
        self.sync(SYNC_TIMEOUT).await?;
        self.fetch_statuses(clock).await
    }

    /// Deletes expired statuses here and takes the new ones the relay holds for this user;
    /// how many were new. Without receiving first: for a session that is already subscribed
    /// and receiving (the key shares come with its events).
    pub async fn fetch_statuses(&mut self, clock: &Clock) -> Result<usize, ClientError> {
        let now = clock.now_ms();
        let client = self.client().clone();
        client
            .blocking(move |inner| inner.store.forget_expired_statuses(now))
            .await?;
        let mut after_ms = 0;
        let mut new = 0;
        for _ in 0..MAX_FETCH_PAGES {
            let items = self
                .connection()
                .call(GetStatuses { after_ms })
                .await?
                .into_vec();
            let full = items.len() >= MAX_STATUSES_PER_ANSWER;
            after_ms = items.last().map_or(after_ms, |item| item.posted_at_ms);
            new += client
                .blocking(move |inner| inner.store.take_statuses(&inner.identity, items, now))
                .await?;
            if !full {
                break;
            }
        }
        Ok(new)
    }

    /// Whose statuses wait here: unseen first, then the newest.
    pub async fn status_overview(
        &mut self,
        clock: &Clock,
    ) -> Result<Vec<StatusSummary>, ClientError> {
        self.refresh_statuses(clock).await?;
        let now = clock.now_ms();
        let held = self
            .client()
            .blocking(move |inner| inner.store.received_statuses(now))
            .await?;
        let mut summaries: Vec<StatusSummary> = Vec::new();
        for status in held {
            let at = match summaries.iter().position(|s| s.poster == status.poster) {
                Some(at) => at,
                None => {
                    summaries.push(StatusSummary {
                        poster: status.poster,
                        total: 0,
                        unseen: 0,
                        newest_ms: 0,
                    });
                    summaries.len() - 1
                }
            };
            let summary = &mut summaries[at];
            summary.total += 1;
            summary.unseen += usize::from(!status.seen);
            summary.newest_ms = summary.newest_ms.max(status.posted_at_ms);
        }
        summaries.sort_by(|a, b| {
            (b.unseen > 0)
                .cmp(&(a.unseen > 0))
                .then(b.newest_ms.cmp(&a.newest_ms))
        });
        Ok(summaries)
    }

    /// `who`'s statuses in the order posted, marked seen; the poster (only) is told which
    /// ones were seen for the first time.
    pub async fn view_statuses(
        &mut self,
        clock: &Clock,
        who: &str,
    ) -> Result<Vec<ReceivedStatus>, ClientError> {
        let client = self.client().clone();
        let poster = client.resolve(who)?;
        self.refresh_statuses(clock).await?;
        let now = clock.now_ms();
        let (shown, newly) = client
            .blocking(move |inner| inner.store.view_statuses(&poster, now))
            .await?;
        if !newly.is_empty() {
            self.send_seen(poster, newly).await?;
        }
        Ok(shown)
    }

    async fn send_seen(&mut self, poster: UserId, ids: Vec<EnvelopeId>) -> Result<(), ClientError> {
        let client = self.client().clone();
        let mut events = VecDeque::new();
        if !client.inner.list_checks.is_fresh(&poster) {
            refresh_list(&client, self.connection(), poster, &mut events).await?;
        }
        let devices: Vec<Address> = client
            .store()
            .device_list(&poster)?
            .map(|list| {
                list.list
                    .devices
                    .iter()
                    .map(|entry| Address {
                        user: poster,
                        device: entry.device,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reached = reach(&client, self.connection(), devices).await?;
        for (device, why) in &reached.unreachable {
            tracing::info!(%device, ?why, "a poster's device does not hear it was seen");
        }
        for chunk in reached.ready.chunks(MAX_BATCH_ENVELOPES) {
            let (chunk, ids) = (chunk.to_vec(), ids.clone());
            let sealed = client
                .blocking(move |inner| inner.store.seal_status_seen(&inner.identity, &ids, &chunk))
                .await?;
            self.send(sealed, "status seen receipts").await?;
        }
        Ok(())
    }

    /// This user's unexpired statuses (posted from this device) and who saw each, after
    /// receiving what waits.
    pub async fn my_statuses(&mut self, clock: &Clock) -> Result<Vec<MyStatus>, ClientError> {
        self.refresh_statuses(clock).await?;
        let now = clock.now_ms();
        self.client()
            .blocking(move |inner| inner.store.my_statuses(now))
            .await
    }
}
