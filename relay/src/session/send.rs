//! `Send`: check, verify and durably store a batch of envelopes; one outcome each.

use std::sync::Arc;

use bytes::Bytes;
use tidings_protocol::{
    Address, BoundedVec, Envelope, ErrorAnswer, ErrorCode, Kind, RawEnvelope, Recipient,
    client::{EnvelopeBatch, Response, SendOutcome},
    envelope::verify_batch,
    limits::MAX_ENVELOPE_BYTES,
};

use super::{Answer, Shared, storage_answer};
use crate::store::{NewEnvelope, StoreOutcome};

fn reject(code: ErrorCode, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Rejected(ErrorAnswer::new(code, detail))
}

/// Everything about an envelope that can be checked without its signature.
fn precheck(me: &Address, raw: &RawEnvelope) -> Result<Envelope, SendOutcome> {
    if raw.len() > MAX_ENVELOPE_BYTES {
        return Err(reject(
            ErrorCode::EnvelopeTooLarge,
            format!("{} bytes exceeds {MAX_ENVELOPE_BYTES}", raw.len()),
        ));
    }
    let envelope = raw
        .decode_unverified()
        .map_err(|error| reject(ErrorCode::Malformed, error.to_string()))?;
    if envelope.sender != *me {
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

/// Handles one `Send` request.
pub(super) async fn handle(shared: Arc<Shared>, me: Address, batch: EnvelopeBatch) -> Answer {
    let raws = batch.into_vec();
    let mut outcomes: Vec<Option<SendOutcome>> = vec![None; raws.len()];
    let mut checked = Vec::with_capacity(raws.len());
    for (index, raw) in raws.iter().enumerate() {
        match precheck(&me, raw) {
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

    let mut slots = Vec::with_capacity(checked.len());
    let mut items = Vec::with_capacity(checked.len());
    let mut raws: Vec<Option<RawEnvelope>> = raws.into_iter().map(Some).collect();
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
        slots.push(index);
        items.push(NewEnvelope {
            id: envelope.id,
            recipient,
            bytes: Bytes::from(raw.into_bytes()),
        });
    }
    if !items.is_empty() {
        match shared.store.store_envelopes(items).await {
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
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| reject(ErrorCode::Malformed, "envelope was not handled"))
        })
        .collect();
    BoundedVec::new(outcomes)
        .map(|outcomes| Response::Sent { outcomes })
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
}

fn send_outcome(outcome: StoreOutcome) -> SendOutcome {
    match outcome {
        StoreOutcome::Accepted { .. } => SendOutcome::Accepted,
        StoreOutcome::Duplicate => SendOutcome::Duplicate,
        StoreOutcome::IdReused => reject(
            ErrorCode::IdReused,
            "this envelope id was already used for other content",
        ),
        StoreOutcome::UnknownRecipient => reject(
            ErrorCode::UnknownRecipient,
            "the recipient is not registered on this relay",
        ),
        StoreOutcome::MailboxFull => {
            reject(ErrorCode::QuotaExceeded, "the recipient's mailbox is full")
        }
    }
}
