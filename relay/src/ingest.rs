//! Taking envelopes in, from a device or another relay: check, verify, store, answer each.

use bytes::Bytes;
use tidings_protocol::{
    Address, Envelope, ErrorAnswer, ErrorCode, Kind, RawEnvelope, Recipient, client::SendOutcome,
    envelope::verify_batch, limits::MAX_ENVELOPE_BYTES,
};

use crate::store::{NewEnvelope, Origin, Store, StoreError, StoreOutcome};

fn reject(code: ErrorCode, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Rejected(ErrorAnswer::new(code, detail))
}

/// Answer for a storage failure: transient, nothing was stored.
pub(crate) fn storage_answer(error: StoreError) -> ErrorAnswer {
    tracing::warn!(%error, "storage error answered to a peer");
    ErrorAnswer::new(
        ErrorCode::Storage,
        "the relay could not store this; retry later",
    )
}

/// Everything about an envelope that can be checked without its signature.
fn precheck(sender: Option<&Address>, raw: &RawEnvelope) -> Result<Envelope, SendOutcome> {
    if raw.len() > MAX_ENVELOPE_BYTES {
        return Err(reject(
            ErrorCode::EnvelopeTooLarge,
            format!("{} bytes exceeds {MAX_ENVELOPE_BYTES}", raw.len()),
        ));
    }
    let envelope = raw
        .decode_unverified()
        .map_err(|error| reject(ErrorCode::Malformed, error.to_string()))?;
    if let Some(sender) = sender
        && envelope.sender != *sender
    {
        return Err(reject(
            ErrorCode::SenderMismatch,
            "the sender is not the device on this stream",
        ));
    }
    if envelope.kind == Kind::Typing {
        return Err(reject(
            ErrorCode::Unavailable,
            "typing notices are not relayed by this version",
        ));
    }
    if let Recipient::Group(_) = envelope.recipient {
        return Err(reject(
            ErrorCode::Unavailable,
            "group envelopes are not relayed by this version",
        ));
    }
    Ok(envelope)
}

/// Checks and verifies envelopes; `sender`, if given, must be every envelope's sender.
/// Returns the envelopes to store with their positions, and the refusals by position.
pub(crate) fn verify(
    sender: Option<&Address>,
    raws: Vec<RawEnvelope>,
) -> (Vec<(usize, NewEnvelope)>, Vec<Option<SendOutcome>>) {
    let mut outcomes: Vec<Option<SendOutcome>> = vec![None; raws.len()];
    let mut checked = Vec::with_capacity(raws.len());
    for (index, raw) in raws.iter().enumerate() {
        match precheck(sender, raw) {
            Ok(envelope) => checked.push((index, envelope)),
            Err(outcome) => outcomes[index] = Some(outcome),
        }
    }
    let pairs: Vec<(&RawEnvelope, &Envelope)> = checked
        .iter()
        .map(|(index, envelope)| (&raws[*index], envelope))
        .collect();
    let verdicts = verify_batch(&pairs);
    drop(pairs);
    let mut raws: Vec<Option<RawEnvelope>> = raws.into_iter().map(Some).collect();
    let mut good = Vec::with_capacity(checked.len());
    for ((index, envelope), verdict) in checked.into_iter().zip(verdicts) {
        if verdict.is_err() {
            outcomes[index] = Some(reject(
                ErrorCode::BadSignature,
                "the signature does not verify with the sender device's key",
            ));
            continue;
        }
        let (Some(recipient), Some(raw)) = (envelope.recipient.user(), raws[index].take()) else {
            continue;
        };
        good.push((
            index,
            NewEnvelope {
                id: envelope.id,
                sender: envelope.sender.user,
                recipient,
                bytes: Bytes::from(raw.into_bytes()),
            },
        ));
    }
    (good, outcomes)
}

/// Verifies and durably stores a batch; one outcome per envelope, in order.
pub(crate) async fn ingest(
    store: &Store,
    origin: Origin,
    sender: Option<&Address>,
    raws: Vec<RawEnvelope>,
) -> Vec<SendOutcome> {
    let (good, mut outcomes) = verify(sender, raws);
    if !good.is_empty() {
        let (slots, items): (Vec<usize>, Vec<NewEnvelope>) = good.into_iter().unzip();
        match store.store_envelopes(items, origin).await {
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
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| reject(ErrorCode::Malformed, "not handled")))
        .collect()
}

/// What a peer is told about one stored (or refused) envelope.
pub(crate) fn send_outcome(outcome: StoreOutcome) -> SendOutcome {
    match outcome {
        StoreOutcome::Accepted { .. } | StoreOutcome::Queued { .. } => SendOutcome::Accepted,
        StoreOutcome::Duplicate => SendOutcome::Duplicate,
        StoreOutcome::IdReused => reject(
            ErrorCode::IdReused,
            "this envelope id was already used for other content",
        ),
        StoreOutcome::NotHere => reject(
            ErrorCode::WrongRelay,
            "the recipient's home is not this relay",
        ),
        StoreOutcome::MailboxFull => {
            reject(ErrorCode::QuotaExceeded, "the recipient's mailbox is full")
        }
        StoreOutcome::OutboxFull => reject(
            ErrorCode::RateLimited,
            "this relay's outbox is full; retry later",
        ),
    }
}
