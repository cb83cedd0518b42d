//! Taking envelopes in, from a device or another relay: rate-limit, check, verify, store,
//! answer each.

mod rate;
mod verify;

use bytes::Bytes;
use tidings_protocol::{
    Address, Envelope, ErrorAnswer, ErrorCode, Kind, RawEnvelope, Recipient, UserId,
    client::SendOutcome, envelope::SenderKey, group::SignedDescriptor,
};

use crate::metrics::{Metrics, StoredFrom};
use crate::store::{
    GroupEnvelope, GroupOutcome, NewEnvelope, Origin, Store, StoreError, StoreOutcome,
};

pub(crate) use rate::{RateLimiter, RateLimits};
pub(crate) use verify::verify;

pub(crate) fn reject(code: ErrorCode, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Rejected(ErrorAnswer::new(code, detail))
}

/// What a device over its rate limit is told.
pub(crate) const SENDING_TOO_FAST: &str = "you are sending too fast; retry later";

/// Why an envelope whose id was used for other content is refused.
const ID_REUSED: &str = "this envelope id was already used for other content";

/// Why an envelope for another relay is refused when the outbox is full.
const OUTBOX_FULL: &str = "this relay's outbox is full; retry later";

/// What a device whose envelopes hold their whole share of the outbox is told.
const OUTBOX_SHARE_FULL: &str =
    "your messages waiting for other relays hold your whole share of the outbox; retry later";

/// Answer for an envelope beyond its sender's rate limit: transient, nothing was stored.
pub(crate) fn rate_limited(detail: &str) -> SendOutcome {
    reject(ErrorCode::RateLimited, detail)
}

/// Answer for a storage failure: transient, nothing was stored.
pub(crate) fn storage_answer(error: StoreError) -> ErrorAnswer {
    tracing::warn!(%error, "storage error answered to a peer");
    ErrorAnswer::new(
        ErrorCode::Storage,
        "the relay could not store this; retry later",
    )
}

/// An envelope whose signature holds, with its wire bytes.
pub(crate) struct Verified {
    pub envelope: Envelope,
    pub bytes: Bytes,
}

impl Verified {
    /// As an envelope for `user` (handed on from their previous home: the store finds the
    /// devices it is for).
    pub fn for_user(&self, user: UserId) -> NewEnvelope {
        NewEnvelope {
            id: self.envelope.id,
            sender: self.envelope.sender.user,
            recipient: user,
            device: None,
            bytes: self.bytes.clone(),
        }
    }

    /// As a direct envelope for the device `recipient`.
    pub fn direct(&self, recipient: Address) -> NewEnvelope {
        NewEnvelope {
            id: self.envelope.id,
            sender: self.envelope.sender.user,
            recipient: recipient.user,
            device: Some(recipient.device),
            bytes: self.bytes.clone(),
        }
    }
}

/// The kind of each verified envelope, by its index in the request (for the metrics).
pub(crate) fn kinds(good: &[(usize, Verified)]) -> Vec<(usize, Kind)> {
    good.iter()
        .map(|(index, verified)| (*index, verified.envelope.kind))
        .collect()
}

/// What one verified envelope from a device becomes in the store.
enum Stored {
    Direct(NewEnvelope),
    Group(Box<GroupEnvelope>),
}

fn classify(verified: &Verified) -> Result<Stored, SendOutcome> {
    let envelope = &verified.envelope;
    match envelope.recipient {
        Recipient::Direct(address) => Ok(Stored::Direct(verified.direct(address))),
        Recipient::Group(group) => {
            let change = match envelope.kind {
                Kind::GroupControl => Some(
                    SignedDescriptor::decode(&envelope.body)
                        .map_err(|error| reject(ErrorCode::BadDescriptor, error.to_string()))?,
                ),
                _ => None,
            };
            Ok(Stored::Group(Box::new(GroupEnvelope {
                id: envelope.id,
                sender: envelope.sender.user,
                sender_device: envelope.sender.device,
                group,
                bytes: verified.bytes.clone(),
                change,
            })))
        }
    }
}

/// Verifies and durably stores a device's batch, in order; one outcome per envelope. A group
/// envelope is charged to `rates` for every further entry it creates; once the sender owes
/// tokens, the rest of the request is refused `rate_limited`.
pub(crate) async fn ingest(
    store: &Store,
    metrics: &Metrics,
    rates: &RateLimiter<UserId>,
    sender: &Address,
    sender_key: Option<&SenderKey>,
    raws: Vec<RawEnvelope>,
) -> Vec<SendOutcome> {
    let (good, mut outcomes) = verify(Some(*sender), sender_key, raws).await;
    let kinds = kinds(&good);
    let mut directs: Vec<(usize, NewEnvelope)> = Vec::new();
    let mut limited = false;
    for (index, verified) in good {
        if limited {
            outcomes[index] = Some(rate_limited(SENDING_TOO_FAST));
            continue;
        }
        match classify(&verified) {
            Ok(Stored::Direct(item)) => directs.push((index, item)),
            Ok(Stored::Group(item)) => {
                // Earlier direct envelopes of the request are stored first: order holds.
                store_directs(store, &mut directs, &mut outcomes).await;
                if rates.in_debt(sender.user) {
                    limited = true;
                    outcomes[index] = Some(rate_limited(SENDING_TOO_FAST));
                    continue;
                }
                outcomes[index] = Some(match store.store_group_envelope(*item).await {
                    Ok(outcome) => {
                        if let GroupOutcome::Accepted { local, queued } = outcome {
                            // One token was taken for the envelope already.
                            rates.charge(sender.user, (local + queued).saturating_sub(1));
                        }
                        group_outcome(outcome)
                    }
                    Err(error) => SendOutcome::Rejected(storage_answer(error)),
                });
            }
            Err(refusal) => outcomes[index] = Some(refusal),
        }
    }
    store_directs(store, &mut directs, &mut outcomes).await;
    for (index, kind) in kinds {
        if matches!(outcomes[index], Some(SendOutcome::Accepted)) {
            metrics.envelope_stored(kind, StoredFrom::Client);
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| reject(ErrorCode::Malformed, "not handled")))
        .collect()
}

async fn store_directs(
    store: &Store,
    directs: &mut Vec<(usize, NewEnvelope)>,
    outcomes: &mut [Option<SendOutcome>],
) {
    if directs.is_empty() {
        return;
    }
    let (slots, items): (Vec<usize>, Vec<NewEnvelope>) =
        std::mem::take(directs).into_iter().unzip();
    match store.store_envelopes(items, Origin::Client).await {
        Ok(stored) => {
            for (index, outcome) in slots.into_iter().zip(stored) {
                outcomes[index] = Some(send_outcome(outcome));
            }
        }
        Err(error) => {
            let answer = storage_answer(error);
            for index in slots {
                outcomes[index] = Some(SendOutcome::Rejected(answer.clone()));
            }
        }
    }
}

fn group_outcome(outcome: GroupOutcome) -> SendOutcome {
    match outcome {
        GroupOutcome::Accepted { .. } => SendOutcome::Accepted,
        GroupOutcome::Duplicate => SendOutcome::Duplicate,
        GroupOutcome::IdReused => reject(ErrorCode::IdReused, ID_REUSED),
        GroupOutcome::UnknownGroup => reject(
            ErrorCode::GroupOutOfDate,
            "this relay does not know the group",
        ),
        GroupOutcome::NotMember => {
            reject(ErrorCode::NotMember, "you are not a member of the group")
        }
        GroupOutcome::BadDescriptor(error) => reject(ErrorCode::BadDescriptor, error.to_string()),
        GroupOutcome::OutboxFull => reject(ErrorCode::RateLimited, OUTBOX_FULL),
        GroupOutcome::OutboxShareFull => reject(ErrorCode::RateLimited, OUTBOX_SHARE_FULL),
    }
}

/// What a peer is told about one stored (or refused) envelope.
pub(crate) fn send_outcome(outcome: StoreOutcome) -> SendOutcome {
    match outcome {
        StoreOutcome::Accepted { .. } | StoreOutcome::Queued { .. } => SendOutcome::Accepted,
        StoreOutcome::Duplicate => SendOutcome::Duplicate,
        StoreOutcome::IdReused => reject(ErrorCode::IdReused, ID_REUSED),
        StoreOutcome::NotHere => reject(
            ErrorCode::WrongRelay,
            "the recipient's home is not this relay",
        ),
        StoreOutcome::UnknownDevice => reject(
            ErrorCode::UnknownRecipient,
            "the recipient has no such device: fetch their device list again",
        ),
        StoreOutcome::MailboxFull => {
            reject(ErrorCode::QuotaExceeded, "the recipient's mailbox is full")
        }
        StoreOutcome::RelayShareFull => reject(
            ErrorCode::RateLimited,
            "your relay's envelopes hold their whole share of the mailboxes here; retry later",
        ),
        StoreOutcome::OutboxFull => reject(ErrorCode::RateLimited, OUTBOX_FULL),
        StoreOutcome::OutboxShareFull => reject(ErrorCode::RateLimited, OUTBOX_SHARE_FULL),
        StoreOutcome::NotMember => reject(ErrorCode::NotMember, "not a member of the group"),
        StoreOutcome::GroupOutOfDate => reject(
            ErrorCode::GroupOutOfDate,
            "this relay holds an older version of the group",
        ),
        StoreOutcome::BadDescriptor => reject(
            ErrorCode::BadDescriptor,
            "the group change does not follow the versions this relay holds",
        ),
        StoreOutcome::Suspended => reject(
            ErrorCode::UserSuspended,
            "the recipient's account is suspended by their relay's operator",
        ),
        StoreOutcome::Removed => reject(
            ErrorCode::UnknownRecipient,
            "no such user: their relay's operator removed them",
        ),
    }
}
