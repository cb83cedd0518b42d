//! Inbound `Forward` batches: rate-limit the relay, verify signatures, bind every sender to
//! its account and to the handing relay, check group changes, store, answer per recipient.

use libp2p::PeerId;
use tidings_protocol::{
    Address, DeviceCert, ErrorCode, Kind, Recipient, UserId, client::SendOutcome,
    federation::ForwardItem, group::SignedDescriptor,
};

use super::context::FederationContext;
use crate::{
    ingest::{self, Verified, reject, storage_answer},
    metrics::{Refusal, StoredFrom},
    store::{GroupDelivery, Origin, StoreOutcome},
};

/// Stores the leading items the peer's rate limit covers (each costs one token per
/// recipient) and answers the rest `rate_limited`: one outcome per recipient, items in order.
/// The sending relay keeps the refused ones in its outbox and retries them after a pause.
pub(super) async fn forward(
    cx: &FederationContext,
    peer: PeerId,
    mut items: Vec<ForwardItem>,
    certs: &[DeviceCert],
) -> Vec<SendOutcome> {
    let costs: Vec<usize> = items
        .iter()
        .map(|item| item.recipients.len().max(1))
        .collect();
    let granted = cx.relay_rate.take(peer, costs.iter().copied());
    let refused = items.split_off(granted);
    let mut outcomes = if items.is_empty() {
        Vec::new()
    } else {
        store_items(cx, peer, items, certs).await
    };
    if !refused.is_empty() {
        tracing::info!(%peer, refused = refused.len(), "another relay is over its rate limit");
        let limited = ingest::rate_limited("your relay is sending too fast; retry later");
        for item in &refused {
            outcomes.extend(std::iter::repeat_n(limited.clone(), item.recipients.len()));
        }
    }
    outcomes
}

/// What a forwarded group change says, checked against its envelope; its bytes are charged
/// to the peer's descriptor rate (a change is kept as long as its group).
fn group_change(
    cx: &FederationContext,
    peer: PeerId,
    verified: &Verified,
) -> Result<Option<SignedDescriptor>, SendOutcome> {
    let envelope = &verified.envelope;
    if envelope.kind != Kind::GroupControl {
        return Ok(None);
    }
    let change = SignedDescriptor::decode(&envelope.body)
        .map_err(|error| reject(ErrorCode::BadDescriptor, error.to_string()))?;
    if Recipient::Group(change.descriptor.group) != envelope.recipient
        || !change.sent_by(&envelope.sender)
    {
        return Err(reject(
            ErrorCode::BadDescriptor,
            "a group change must be sent by its author (its signing device) to its group",
        ));
    }
    let kib = envelope.body.len().div_ceil(1024);
    if cx.descriptor_rate.take(peer, [kib]) == 0 {
        cx.metrics.limits.refused(Refusal::DescriptorRate);
        return Err(ingest::rate_limited(
            "your relay is sending group descriptors too fast; retry later",
        ));
    }
    Ok(Some(change))
}

/// Stores forwarded items: one outcome per recipient, items in order. Signatures are checked
/// once per envelope, not once per recipient.
async fn store_items(
    cx: &FederationContext,
    peer: PeerId,
    items: Vec<ForwardItem>,
    certs: &[DeviceCert],
) -> Vec<SendOutcome> {
    let recipients: Vec<Vec<UserId>> = items.iter().map(|item| item.recipients.to_vec()).collect();
    let versions: Vec<u64> = items.iter().map(|item| item.group_version).collect();
    let raws = items.into_iter().map(|item| item.envelope).collect();
    let (good, refused) = ingest::verify(None, None, raws).await;
    let mut outcomes: Vec<Vec<SendOutcome>> = refused
        .into_iter()
        .zip(&recipients)
        .map(|(refusal, users)| match refusal {
            Some(refusal) => vec![refusal; users.len()],
            None => Vec::new(),
        })
        .collect();
    let senders: Vec<Address> = good
        .iter()
        .map(|(_, verified)| verified.envelope.sender)
        .collect();
    let unbound = cx.senders.check(&cx.directory, peer, certs, senders).await;
    let good: Vec<(usize, Verified)> = good
        .into_iter()
        .filter(|(index, verified)| match unbound.get(&verified.envelope.sender) {
            Some(answer) => {
                tracing::info!(%peer, sender = %verified.envelope.sender, %answer, "refusing a forwarded envelope");
                outcomes[*index] =
                    vec![SendOutcome::Rejected(answer.clone()); recipients[*index].len()];
                false
            }
            None => true,
        })
        .collect();
    let kinds = ingest::kinds(&good);
    let mut directs = Vec::new();
    let mut groups = Vec::new();
    for (index, verified) in good {
        let envelope = &verified.envelope;
        let users = &recipients[index];
        match envelope.recipient {
            Recipient::Direct(address) if users.as_slice() == [address.user] => {
                directs.push((index, verified.direct(address)));
            }
            Recipient::Direct(_) => {
                outcomes[index] =
                    vec![
                        reject(ErrorCode::Malformed, "recipients do not match the envelope");
                        users.len()
                    ];
            }
            Recipient::Group(group) => match group_change(cx, peer, &verified) {
                Ok(change) => groups.push((
                    index,
                    GroupDelivery {
                        id: envelope.id,
                        sender: envelope.sender.user,
                        group,
                        version: versions[index],
                        change,
                        origin: peer,
                        bytes: verified.bytes.clone(),
                        recipients: users.clone(),
                    },
                )),
                Err(refusal) => outcomes[index] = vec![refusal; users.len()],
            },
        }
    }
    if !directs.is_empty() {
        let (slots, items): (Vec<usize>, Vec<_>) = directs.into_iter().unzip();
        match cx
            .store
            .store_envelopes(items, Origin::Federation(peer))
            .await
        {
            Ok(stored) => {
                for (index, outcome) in slots.into_iter().zip(stored) {
                    outcomes[index] = vec![ingest::send_outcome(outcome)];
                }
            }
            Err(error) => {
                let answer = SendOutcome::Rejected(storage_answer(error));
                for index in slots {
                    outcomes[index] = vec![answer.clone()];
                }
            }
        }
    }
    if !groups.is_empty() {
        let sizes: Vec<(usize, usize)> = groups
            .iter()
            .map(|(index, delivery)| (*index, delivery.recipients.len()))
            .collect();
        let awaiting: Vec<(tidings_protocol::GroupId, Vec<UserId>)> = groups
            .iter()
            .map(|(_, delivery)| (delivery.group, delivery.recipients.clone()))
            .collect();
        let deliveries = groups.into_iter().map(|(_, delivery)| delivery).collect();
        match cx.store.store_group_deliveries(deliveries).await {
            Ok(stored) => {
                let mut stored = stored.into_iter();
                for ((index, count), (group, users)) in sizes.into_iter().zip(awaiting) {
                    let answers: Vec<StoreOutcome> = stored.by_ref().take(count).collect();
                    if answers.contains(&StoreOutcome::GroupOutOfDate)
                        && has_local(cx, &users).await
                    {
                        cx.awaited_groups.expect(peer, group);
                    }
                    outcomes[index] = answers.into_iter().map(ingest::send_outcome).collect();
                }
            }
            Err(error) => {
                let answer = SendOutcome::Rejected(storage_answer(error));
                for (index, count) in sizes {
                    outcomes[index] = vec![answer.clone(); count];
                }
            }
        }
    }
    for (index, kind) in kinds {
        // A group envelope is stored once for all its recipients here.
        if outcomes[index]
            .iter()
            .any(|outcome| matches!(outcome, SendOutcome::Accepted))
        {
            cx.metrics.envelope_stored(kind, StoredFrom::Federation);
        }
    }
    outcomes.into_iter().flatten().collect()
}

/// Whether one of `users` lives here (a store read per user until one does).
async fn has_local(cx: &FederationContext, users: &[UserId]) -> bool {
    for user in users {
        if matches!(cx.directory.is_local(*user).await, Ok(true)) {
            return true;
        }
    }
    false
}
