//! Status updates in the local store: this device's Megolm session for its statuses (who
//! holds its key), the keys of contacts' status sessions, statuses received (seen or not)
//! and this user's own (who saw them). Everything expired is deleted by [`ClientStore::forget_expired_statuses`].

use super::at_rest::WriteTxn;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tidings_keys::{GroupInbound, GroupOutbound, Identity, StoreKey};
use tidings_protocol::{
    Address, BoundedVec, EnvelopeId, Kind, RawEnvelope, UserId,
    content::{MegolmBody, Payload},
    limits::MAX_RECEIPT_IDS,
    media::MediaMessage,
    status::{MAX_STATUS_AUDIENCE, OwnStatus, StatusItem, StatusSealed},
};

use super::{
    ClientStore, StoreError,
    crypto::{CryptoState, olm_seal},
    decode,
    device_lists::listed_devices,
    encode,
};

/// Most statuses received kept at once (the oldest go first past it).
pub const MAX_RECEIVED_STATUSES: usize = 4096;

/// Most users ever given the key of one outbound status session (past it, a new session).
const MAX_SESSION_AUDIENCE: usize = 4 * MAX_STATUS_AUDIENCE;

/// "current" -> this device's status session ([`OutboundStatus`]).
const STATUS_OUTBOUND: TableDefinition<&str, &[u8]> = TableDefinition::new("status_outbound");

/// poster (32) || session id -> pickled inbound session.
const STATUS_INBOUND: TableDefinition<&[u8], &str> = TableDefinition::new("status_inbound");

/// poster (32) || posted at (8) || status id (16) -> [`ReceivedStatus`].
pub(super) const STATUS_RECEIVED: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("status_received");

/// status id (16) -> [`MyStatus`].
pub(super) const STATUS_MINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("status_mine");

const CURRENT: &str = "current";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboundStatus {
    pickle: String,
    /// Everyone who was ever in an audience of this session (they can read what it seals).
    audience: Vec<UserId>,
    /// Devices that were sent its key.
    shared: Vec<Address>,
}

/// A status received from a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedStatus {
    /// Who posted it.
    pub poster: UserId,
    /// Its id.
    pub id: EnvelopeId,
    /// The text (a picture's or video's caption).
    pub text: String,
    /// When the poster's relay stored it.
    pub posted_at_ms: u64,
    /// When it is deleted everywhere.
    pub expires_at_ms: u64,
    /// Whether it was viewed here.
    pub seen: bool,
    /// A picture or video: where its blob is and the key to it.
    #[serde(default)]
    pub media: Option<Box<MediaMessage>>,
}

/// One of this user's statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyStatus {
    /// Its id.
    pub id: EnvelopeId,
    /// The text.
    pub text: String,
    /// When it expires.
    pub expires_at_ms: u64,
    /// Who it was posted to.
    pub audience: Vec<UserId>,
    /// Who said they saw it.
    pub seen_by: Vec<UserId>,
    /// Its picture or video, if any.
    #[serde(default)]
    pub media: Option<Box<MediaMessage>>,
}

/// What sharing this device's status session needs before a post.
#[derive(Debug, Clone)]
pub struct StatusKeyPlan {
    /// The session key to send.
    pub session_key: Vec<u8>,
    /// Audience (and own) devices that lack it.
    pub need: Vec<Address>,
    /// Audience users without a known device list.
    pub unlisted: Vec<UserId>,
}

fn received_key(poster: &UserId, posted_at_ms: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut key = Vec::with_capacity(56);
    key.extend_from_slice(poster.as_bytes());
    key.extend_from_slice(&posted_at_ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn inbound_key(poster: &UserId, session_id: &str) -> Vec<u8> {
    let mut key = poster.as_bytes().to_vec();
    key.extend_from_slice(session_id.as_bytes());
    key
}

fn megolm_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt("status_outbound", error)
}

/// Keeps the key of `poster`'s status session (from a [`Payload::StatusKey`]).
pub(super) fn add_inbound(
    txn: &WriteTxn<'_>,
    store_key: &StoreKey,
    poster: &UserId,
    session_key: &[u8],
) -> Result<(), StoreError> {
    match GroupInbound::from_session_key(session_key) {
        Ok(inbound) => {
            txn.open_table(STATUS_INBOUND)?.insert(
                inbound_key(poster, &inbound.session_id()).as_slice(),
                inbound.pickle(store_key).as_str(),
            )?;
        }
        Err(reason) => tracing::warn!(%poster, %reason, "unusable status key"),
    }
    Ok(())
}

/// Notes that `viewer` saw these statuses of ours (only those posted to them).
pub(super) fn mark_seen_by(
    txn: &WriteTxn<'_>,
    viewer: &UserId,
    ids: &[EnvelopeId],
) -> Result<(), StoreError> {
    let mut mine = txn.open_table(STATUS_MINE)?;
    for id in ids {
        let Some(bytes) = mine
            .get(id.as_bytes().as_slice())?
            .map(|b| b.value().to_vec())
        else {
            continue;
        };
        let mut status: MyStatus = txn
            .at_rest
            .open_record("status_mine", id.as_bytes(), &bytes)?;
        if status.audience.contains(viewer) && !status.seen_by.contains(viewer) {
            status.seen_by.push(*viewer);
            let sealed = txn
                .at_rest
                .seal_record("status_mine", id.as_bytes(), &status)?;
            mine.insert(id.as_bytes().as_slice(), sealed.as_slice())?;
        }
    }
    Ok(())
}

/// Keeps a status another device of ours posted (from a [`Payload::StatusMine`]), so the
/// seen receipts for it are counted here too.
pub(super) fn take_own(txn: &WriteTxn<'_>, status: OwnStatus) -> Result<(), StoreError> {
    let mut mine = txn.open_table(STATUS_MINE)?;
    if mine.get(status.id.as_bytes().as_slice())?.is_some() {
        return Ok(());
    }
    let record = MyStatus {
        id: status.id,
        text: status.text,
        expires_at_ms: status.expires_at_ms,
        audience: status.audience.into_vec(),
        seen_by: Vec::new(),
        media: status.media,
    };
    let sealed = txn
        .at_rest
        .seal_record("status_mine", record.id.as_bytes(), &record)?;
    mine.insert(record.id.as_bytes().as_slice(), sealed.as_slice())?;
    Ok(())
}

fn load_outbound(txn: &WriteTxn<'_>) -> Result<Option<OutboundStatus>, StoreError> {
    match txn.open_table(STATUS_OUTBOUND)?.get(CURRENT)? {
        Some(bytes) => decode("status_outbound", bytes.value()).map(Some),
        None => Ok(None),
    }
}

fn save_outbound(txn: &WriteTxn<'_>, outbound: &OutboundStatus) -> Result<(), StoreError> {
    txn.open_table(STATUS_OUTBOUND)?
        .insert(CURRENT, encode(outbound).as_slice())?;
    Ok(())
}

impl ClientStore {
    /// This device's status session for `audience` (a new one when someone who held the
    /// current one's key is not in `audience`: they must not read what comes next), and
    /// the devices that still need its key: every listed device of the audience and our own
    /// other devices.
    pub fn plan_status_key(
        &self,
        identity: &Identity,
        audience: &[UserId],
    ) -> Result<StatusKeyPlan, StoreError> {
        self.write(|txn| {
            let me = identity.user_id();
            let current = load_outbound(txn)?.filter(|held| {
                held.audience.len() <= MAX_SESSION_AUDIENCE
                    && held.audience.iter().all(|user| audience.contains(user))
            });
            let mut outbound = match current {
                Some(held) => held,
                None => OutboundStatus {
                    pickle: GroupOutbound::new().pickle(identity.store_key()),
                    audience: Vec::new(),
                    shared: Vec::new(),
                },
            };
            let session = GroupOutbound::unpickle(&outbound.pickle, identity.store_key())
                .map_err(megolm_error)?;
            for user in audience {
                if !outbound.audience.contains(user) {
                    outbound.audience.push(*user);
                }
            }
            let mut need = Vec::new();
            let mut unlisted = Vec::new();
            for user in audience.iter().chain(std::iter::once(&me)) {
                let devices = listed_devices(txn, user)?;
                if devices.is_empty() && *user != me {
                    unlisted.push(*user);
                }
                for device in devices {
                    let address = Address {
                        user: *user,
                        device,
                    };
                    if address != identity.address() && !outbound.shared.contains(&address) {
                        need.push(address);
                    }
                }
            }
            save_outbound(txn, &outbound)?;
            Ok(StatusKeyPlan {
                session_key: session.session_key(),
                need,
                unlisted,
            })
        })
    }

    /// Seals the status session key for each of `devices` (Olm), to send now.
    pub fn seal_status_keys(
        &self,
        identity: &Identity,
        session_key: &[u8],
        devices: &[Address],
    ) -> Result<Vec<(Address, RawEnvelope)>, StoreError> {
        self.write(|txn| {
            let mut state = CryptoState::new(identity);
            let mut out = Vec::with_capacity(devices.len());
            for to in devices {
                let payload = Payload::StatusKey {
                    session_key: session_key.to_vec(),
                };
                let id = EnvelopeId::new();
                out.push((
                    *to,
                    olm_seal(txn, &mut state, id, id, *to, Kind::KeyShare, payload)?,
                ));
            }
            state.save(txn)?;
            Ok(out)
        })
    }

    /// Notes that these devices were sent the current status session's key.
    pub fn mark_status_key_shared(&self, devices: &[Address]) -> Result<(), StoreError> {
        self.write(|txn| {
            let Some(mut outbound) = load_outbound(txn)? else {
                return Ok(());
            };
            for device in devices {
                if !outbound.shared.contains(device) {
                    outbound.shared.push(*device);
                }
            }
            save_outbound(txn, &outbound)
        })
    }

    /// Encrypts a status (a text, or a picture or video with a caption) with the current
    /// session (see [`ClientStore::plan_status_key`]) and keeps it as ours: the body to post.
    pub fn seal_status(
        &self,
        identity: &Identity,
        id: EnvelopeId,
        text: &str,
        media: Option<&MediaMessage>,
        expires_at_ms: u64,
        audience: &[UserId],
    ) -> Result<Vec<u8>, StoreError> {
        self.write(|txn| {
            let Some(mut outbound) = load_outbound(txn)? else {
                return Err(StoreError::NotFound("a status session".into()));
            };
            let mut session = GroupOutbound::unpickle(&outbound.pickle, identity.store_key())
                .map_err(megolm_error)?;
            let sealed = StatusSealed {
                id,
                poster: identity.user_id(),
                expires_at_ms,
                text: text.to_string(),
                media: media.map(|media| Box::new(media.clone())),
            };
            let body = session.encrypt(&sealed.encode()).encode();
            outbound.pickle = session.pickle(identity.store_key());
            save_outbound(txn, &outbound)?;
            let mine = MyStatus {
                id,
                text: text.to_string(),
                expires_at_ms,
                audience: audience.to_vec(),
                seen_by: Vec::new(),
                media: sealed.media,
            };
            let sealed = txn
                .at_rest
                .seal_record("status_mine", id.as_bytes(), &mine)?;
            txn.open_table(STATUS_MINE)?
                .insert(id.as_bytes().as_slice(), sealed.as_slice())?;
            Ok(body)
        })
    }

    /// Opens statuses fetched from the relay and keeps the new ones (unexpired at `now_ms`,
    /// with a key held, whose sealed header matches the clear one); how many were new.
    pub fn take_statuses(
        &self,
        identity: &Identity,
        items: Vec<StatusItem>,
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let me = identity.user_id();
        self.write(|txn| {
            let mut inbound = txn.open_table(STATUS_INBOUND)?;
            let mut received = txn.open_table(STATUS_RECEIVED)?;
            let mut new = 0;
            for item in items {
                let poster = item.poster.user;
                let key = received_key(&poster, item.posted_at_ms, &item.id);
                if poster == me
                    || item.expires_at_ms <= now_ms
                    || received.get(key.as_slice())?.is_some()
                {
                    continue;
                }
                let Ok(body) = MegolmBody::decode(&item.body) else {
                    continue;
                };
                let session_key = inbound_key(&poster, &body.session_id);
                let Some(pickle) = inbound
                    .get(session_key.as_slice())?
                    .map(|p| p.value().to_string())
                else {
                    tracing::debug!(%poster, "no key for a status (yet)");
                    continue;
                };
                let mut session =
                    GroupInbound::unpickle(&pickle, identity.store_key()).map_err(megolm_error)?;
                let Ok(plain) = session.decrypt(&body) else {
                    continue;
                };
                let Ok(sealed) = StatusSealed::decode(&plain) else {
                    continue;
                };
                if sealed.id != item.id
                    || sealed.poster != poster
                    || sealed.expires_at_ms != item.expires_at_ms
                {
                    tracing::warn!(%poster, "a status whose header does not match its content");
                    continue;
                }
                inbound.insert(
                    session_key.as_slice(),
                    session.pickle(identity.store_key()).as_str(),
                )?;
                let status = ReceivedStatus {
                    poster,
                    id: item.id,
                    text: sealed.text,
                    posted_at_ms: item.posted_at_ms,
                    expires_at_ms: item.expires_at_ms,
                    seen: false,
                    media: sealed.media,
                };
                let sealed = txn.at_rest.seal_record("status_received", &key, &status)?;
                received.insert(key.as_slice(), sealed.as_slice())?;
                new += 1;
            }
            while received.len()? > MAX_RECEIVED_STATUSES as u64 {
                let Some((oldest, _)) = received.pop_first()? else {
                    break;
                };
                drop(oldest);
            }
            Ok(new)
        })
    }

    /// Deletes received statuses and our own that expired at `now_ms`; how many.
    pub fn forget_expired_statuses(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.write(|txn| {
            let mut received = txn.open_table(STATUS_RECEIVED)?;
            let before = received.len()?;
            received.retain(|key, bytes| {
                txn.at_rest
                    .open_record::<ReceivedStatus>("status_received", key, bytes)
                    .map(|status| status.expires_at_ms > now_ms)
                    .unwrap_or(false)
            })?;
            let mut mine = txn.open_table(STATUS_MINE)?;
            let mine_before = mine.len()?;
            mine.retain(|key, bytes| {
                txn.at_rest
                    .open_record::<MyStatus>("status_mine", key, bytes)
                    .map(|status| status.expires_at_ms > now_ms)
                    .unwrap_or(false)
            })?;
            Ok((before - received.len()? + mine_before - mine.len()?) as usize)
        })
    }

    /// Every unexpired status received, oldest first per poster.
    pub fn received_statuses(&self, now_ms: u64) -> Result<Vec<ReceivedStatus>, StoreError> {
        self.write(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(STATUS_RECEIVED)?.iter()? {
                let (key, bytes) = entry?;
                let status: ReceivedStatus =
                    txn.at_rest
                        .open_record("status_received", key.value(), bytes.value())?;
                if status.expires_at_ms > now_ms {
                    out.push(status);
                }
            }
            Ok(out)
        })
    }

    /// Marks `poster`'s unexpired statuses seen; returns them in order and the ids that
    /// were unseen until now.
    pub fn view_statuses(
        &self,
        poster: &UserId,
        now_ms: u64,
    ) -> Result<(Vec<ReceivedStatus>, Vec<EnvelopeId>), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(STATUS_RECEIVED)?;
            let start = received_key(poster, 0, &EnvelopeId::from_bytes([0; 16]));
            let mut end = poster.as_bytes().to_vec();
            end.extend_from_slice(&[0xff; 25]);
            let mut shown = Vec::new();
            let mut keys = Vec::new();
            for entry in table.range(start.as_slice()..end.as_slice())? {
                let (key, bytes) = entry?;
                let status: ReceivedStatus =
                    txn.at_rest
                        .open_record("status_received", key.value(), bytes.value())?;
                if status.expires_at_ms > now_ms {
                    keys.push(key.value().to_vec());
                    shown.push(status);
                }
            }
            let mut newly = Vec::new();
            for (key, status) in keys.iter().zip(shown.iter_mut()) {
                if !status.seen {
                    status.seen = true;
                    newly.push(status.id);
                    let sealed = txn.at_rest.seal_record("status_received", key, &*status)?;
                    table.insert(key.as_slice(), sealed.as_slice())?;
                }
            }
            Ok((shown, newly))
        })
    }

    /// Seals a "seen" receipt for these statuses to each of the poster's `devices`.
    pub fn seal_status_seen(
        &self,
        identity: &Identity,
        ids: &[EnvelopeId],
        devices: &[Address],
    ) -> Result<Vec<RawEnvelope>, StoreError> {
        let ids = ids[..ids.len().min(MAX_RECEIPT_IDS)].to_vec();
        let ids = BoundedVec::new(ids).map_err(|error| StoreError::corrupt("status", error))?;
        let sealed = self.seal_now(identity, devices, Kind::Receipt, || Payload::StatusSeen {
            ids: ids.clone(),
        })?;
        Ok(sealed.into_iter().map(|(_, raw)| raw).collect())
    }

    /// Tells each of our own other `devices` about a status we posted (a
    /// [`Payload::StatusMine`] over Olm), without its thumbnail.
    pub fn seal_status_mine(
        &self,
        identity: &Identity,
        status: &OwnStatus,
        devices: &[Address],
    ) -> Result<Vec<RawEnvelope>, StoreError> {
        let mut status = status.clone();
        if let Some(media) = status.media.as_mut() {
            media.thumbnail = None;
        }
        let sealed = self.seal_now(identity, devices, Kind::Receipt, || Payload::StatusMine {
            status: Box::new(status.clone()),
        })?;
        Ok(sealed.into_iter().map(|(_, raw)| raw).collect())
    }

    /// This user's unexpired statuses (posted from this device or, as they told it, from
    /// our other devices), and who saw each.
    pub fn my_statuses(&self, now_ms: u64) -> Result<Vec<MyStatus>, StoreError> {
        self.write(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(STATUS_MINE)?.iter()? {
                let (key, bytes) = entry?;
                let status: MyStatus =
                    txn.at_rest
                        .open_record("status_mine", key.value(), bytes.value())?;
                if status.expires_at_ms > now_ms {
                    out.push(status);
                }
            }
            Ok(out)
        })
    }
}
