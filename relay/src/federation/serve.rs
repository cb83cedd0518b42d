//! Inbound federation streams: another relay forwards, claims, or hands a user over.

use std::{sync::Arc, time::Duration};

use futures::AsyncReadExt;
use libp2p::{PeerId, Stream};
use tidings_protocol::{
    BoundedVec, ErrorAnswer, ErrorCode, HomeRecord, KeyBundle, Kind, MailboxItem, Recipient,
    UserId,
    client::SendOutcome,
    federation::{FederationFrame, FederationRequest, FederationResponse, ForwardItem},
    framing,
    group::SignedDescriptor,
    now_ms,
};

use super::Home;
use crate::{
    ingest::{self, reject, storage_answer},
    metrics::{Metrics, Refusal, StoredFrom},
    presence,
    shared::Shared,
    store::{ClaimOutcome, DescriptorsOutcome, GroupDelivery, HandoffItem, Origin, Store},
};

/// How long writing an answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

type Answer = Result<FederationResponse, ErrorAnswer>;

/// Serves one inbound federation stream until it ends or the relay stops.
pub(crate) async fn serve(shared: Arc<Shared>, peer: PeerId, stream: Stream) {
    let _live = shared.metrics.federation_stream_opened();
    let (mut reader, mut writer) = stream.split();
    let mut buf = Vec::new();
    loop {
        let read = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            read = framing::read_frame(&mut reader, &mut buf) => read,
        };
        match read {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                tracing::info!(%peer, %error, "closing a federation stream");
                break;
            }
        }
        let (id, body) = match FederationFrame::decode(&buf) {
            Ok(FederationFrame::Request { id, body }) => (id, handle(&shared, peer, body).await),
            // A request this relay cannot read but whose id it can (say, a kind from a newer
            // version): an error answer, and the stream goes on.
            Err(error) => match tidings_protocol::framing::request_id(&buf) {
                Some(id) => (
                    id,
                    Err(ErrorAnswer::new(ErrorCode::Malformed, error.to_string())),
                ),
                None => {
                    tracing::info!(%peer, %error, "closing a federation stream that sent garbage");
                    break;
                }
            },
            Ok(FederationFrame::Response { .. }) => {
                tracing::info!(%peer, "closing a federation stream that sent a response");
                break;
            }
        };
        let written = tokio::time::timeout(
            WRITE_TIMEOUT,
            framing::write_frame(&mut writer, &FederationFrame::Response { id, body }),
        )
        .await;
        if !matches!(written, Ok(Ok(()))) {
            break;
        }
    }
    let _ = futures::AsyncWriteExt::close(&mut writer).await;
}

fn stored(outcomes: Vec<SendOutcome>) -> Answer {
    BoundedVec::new(outcomes)
        .map(|outcomes| FederationResponse::Stored { outcomes })
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
}

async fn handle(shared: &Shared, peer: PeerId, request: FederationRequest) -> Answer {
    match request {
        FederationRequest::Forward { items } => {
            let outcomes = match shared.disk.admit() {
                Ok(()) => forward_limited(shared, peer, items.into_vec()).await,
                Err(answer) => {
                    let recipients = items.iter().map(|item| item.recipients.len()).sum();
                    vec![SendOutcome::Rejected(answer); recipients]
                }
            };
            shared
                .metrics
                .envelopes_answered(&outcomes, StoredFrom::Federation);
            stored(outcomes)
        }
        FederationRequest::Claim { user } => claim(&shared.store, user)
            .await
            .map(|bundle| FederationResponse::Bundle(Box::new(bundle))),
        FederationRequest::ClaimBundles { users } => {
            let mut bundles = Vec::with_capacity(users.len());
            for user in users.iter() {
                bundles.push(claim(&shared.store, *user).await);
            }
            BoundedVec::new(bundles)
                .map(|bundles| FederationResponse::Bundles { bundles })
                .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
        }
        FederationRequest::GroupVersion { group } => shared
            .store
            .group_version(group)
            .await
            .map(FederationResponse::GroupVersion)
            .map_err(storage_answer),
        FederationRequest::Descriptors { versions } => {
            shared.disk.admit()?;
            let kib: usize = versions
                .iter()
                .map(|version| version.encode().len().div_ceil(1024))
                .sum();
            if shared.rates.descriptors.take(peer, [kib]) == 0 {
                tracing::info!(%peer, kib, "another relay is over its descriptor rate");
                shared.metrics.limits.refused(Refusal::DescriptorRate);
                return Err(ErrorAnswer::new(
                    ErrorCode::RateLimited,
                    "your relay is sending group descriptors too fast; retry later",
                ));
            }
            match shared
                .store
                .store_descriptors(versions.into_vec())
                .await
                .map_err(storage_answer)?
            {
                DescriptorsOutcome::Stored { .. } => Ok(FederationResponse::DescriptorsStored),
                DescriptorsOutcome::Rejected(error) => Err(ErrorAnswer::new(
                    ErrorCode::BadDescriptor,
                    error.to_string(),
                )),
                DescriptorsOutcome::NoMemberHere => {
                    shared.metrics.limits.refused(Refusal::DescriptorNoMember);
                    Err(ErrorAnswer::new(
                        ErrorCode::NotMember,
                        "no member of this group lives here",
                    ))
                }
            }
        }
        FederationRequest::Handoff {
            home,
            previous,
            items,
        } => {
            shared.disk.admit()?;
            handoff(shared, peer, &home, &previous, items.into_vec()).await
        }
        FederationRequest::WatchPresence { watcher, users } => {
            let reports =
                presence::watch_for_relay(shared, peer, watcher, users.into_vec()).await?;
            BoundedVec::new(reports)
                .map(|reports| FederationResponse::Presence { reports })
                .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
        }
        FederationRequest::PresenceChanged { report, watchers } => {
            presence::watched_from(shared, peer, report, watchers.into_vec());
            Ok(FederationResponse::PresenceTaken)
        }
        FederationRequest::Ephemeral {
            envelope,
            recipients,
        } => {
            presence::check_ephemeral(&envelope)?;
            let mut here = Vec::with_capacity(recipients.len());
            for user in recipients.iter() {
                if matches!(shared.directory.resolve(*user).await, Ok(Home::Local)) {
                    here.push(*user);
                }
            }
            let reached = presence::pass_ephemeral_here(shared, &envelope, &here);
            Ok(FederationResponse::EphemeralPassed { reached })
        }
    }
}

/// Checks that `peer` was the user's home before `home` named us.
fn check_handoff(
    self_peer: &str,
    peer: PeerId,
    home: &HomeRecord,
    previous: &HomeRecord,
) -> Result<(), ErrorAnswer> {
    let bad = |detail: &str| ErrorAnswer::new(ErrorCode::BadHomeRecord, detail);
    home.verify(now_ms())
        .map_err(|error| bad(&error.to_string()))?;
    // The previous record may have expired since; its signature must still hold.
    previous
        .verify(0)
        .map_err(|error| bad(&format!("previous record: {error}")))?;
    if home.relay != self_peer {
        return Err(bad("the new home record does not name this relay"));
    }
    if previous.user != home.user || previous.relay != peer.to_string() {
        return Err(bad("the previous record does not name the sending relay"));
    }
    if previous.seq >= home.seq {
        return Err(bad("the previous record is not older than the new one"));
    }
    Ok(())
}

async fn handoff(
    shared: &Shared,
    peer: PeerId,
    home: &HomeRecord,
    previous: &HomeRecord,
    items: Vec<MailboxItem>,
) -> Answer {
    check_handoff(&shared.peer_id().to_string(), peer, home, previous)?;
    // Envelopes are verified like any forwarded envelope; bounces pass as they are.
    let mut positions = Vec::new();
    let mut raws = Vec::new();
    let mut slots: Vec<Option<HandoffItem>> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item {
            MailboxItem::Envelope(raw) => {
                positions.push(index);
                raws.push(raw);
                slots.push(None);
            }
            bounce @ MailboxItem::Bounce(_) => {
                slots.push(Some(HandoffItem::Bounce(bounce.to_stored().into())));
            }
        }
    }
    let (good, refused) = ingest::verify(None, raws);
    let mut outcomes: Vec<Option<SendOutcome>> = vec![None; slots.len()];
    for (position, refusal) in positions.iter().zip(refused) {
        outcomes[*position] = refusal;
    }
    for (index, verified) in good {
        slots[positions[index]] = Some(HandoffItem::Envelope(verified.direct(home.user)));
    }
    let (indexes, to_store): (Vec<usize>, Vec<HandoffItem>) = slots
        .into_iter()
        .enumerate()
        .filter_map(|(index, slot)| slot.map(|item| (index, item)))
        .unzip();
    let results = shared
        .store
        .handoff_in(home.user, to_store)
        .await
        .map_err(storage_answer)?;
    for (index, result) in indexes.into_iter().zip(results) {
        outcomes[index] = Some(ingest::send_outcome(result));
    }
    stored(
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    SendOutcome::Rejected(ErrorAnswer::new(ErrorCode::Malformed, "not handled"))
                })
            })
            .collect(),
    )
}

/// Hands out a bundle of a user homed here.
async fn claim(store: &Store, user: UserId) -> Result<KeyBundle, ErrorAnswer> {
    match store.claim_bundle(user).await.map_err(storage_answer)? {
        ClaimOutcome::Bundle(bundle) => Ok(*bundle),
        ClaimOutcome::UnknownUser => Err(ErrorAnswer::new(
            ErrorCode::WrongRelay,
            format!("{user} is not homed at this relay"),
        )),
        ClaimOutcome::NoKeys => Err(ErrorAnswer::new(
            ErrorCode::NoKeys,
            format!("{user} has not published keys yet"),
        )),
    }
}

/// Stores the leading items the peer's rate limit covers (each costs one token per
/// recipient) and answers the rest `rate_limited`: one outcome per recipient, items in order.
/// The sending relay keeps the refused ones in its outbox and retries them after a pause.
async fn forward_limited(
    shared: &Shared,
    peer: PeerId,
    mut items: Vec<ForwardItem>,
) -> Vec<SendOutcome> {
    let costs: Vec<usize> = items
        .iter()
        .map(|item| item.recipients.len().max(1))
        .collect();
    let granted = shared.rates.relays.take(peer, costs.iter().copied());
    let refused = items.split_off(granted);
    let mut outcomes = if items.is_empty() {
        Vec::new()
    } else {
        forward(&shared.store, &shared.metrics, peer, items).await
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

/// Stores forwarded items: one outcome per recipient, items in order. Signatures are checked
/// once per envelope, not once per recipient.
async fn forward(
    store: &Store,
    metrics: &Metrics,
    peer: PeerId,
    items: Vec<ForwardItem>,
) -> Vec<SendOutcome> {
    let recipients: Vec<Vec<UserId>> = items.iter().map(|item| item.recipients.to_vec()).collect();
    let versions: Vec<u64> = items.iter().map(|item| item.group_version).collect();
    let raws = items.into_iter().map(|item| item.envelope).collect();
    let (good, refused) = ingest::verify(None, raws);
    let kinds = ingest::kinds(&good);
    let mut outcomes: Vec<Vec<SendOutcome>> = refused
        .into_iter()
        .zip(&recipients)
        .map(|(refusal, users)| match refusal {
            Some(refusal) => vec![refusal; users.len()],
            None => Vec::new(),
        })
        .collect();
    let mut directs = Vec::new();
    let mut groups = Vec::new();
    for (index, verified) in good {
        let envelope = &verified.envelope;
        let users = &recipients[index];
        match envelope.recipient {
            Recipient::Direct(address) if users.as_slice() == [address.user] => {
                directs.push((index, verified.direct(address.user)));
            }
            Recipient::Direct(_) => {
                outcomes[index] =
                    vec![
                        reject(ErrorCode::Malformed, "recipients do not match the envelope");
                        users.len()
                    ];
            }
            Recipient::Group(group) => {
                if envelope.kind == Kind::GroupControl {
                    // A change brings its own descriptor: take it before delivering.
                    if let Ok(change) = SignedDescriptor::decode(&envelope.body) {
                        let _ = store.store_descriptors(vec![change]).await;
                    }
                }
                groups.push((
                    index,
                    GroupDelivery {
                        id: envelope.id,
                        sender: envelope.sender.user,
                        group,
                        origin: peer,
                        version: versions[index],
                        is_change: envelope.kind == Kind::GroupControl,
                        bytes: verified.bytes.clone(),
                        recipients: users.clone(),
                    },
                ));
            }
        }
    }
    if !directs.is_empty() {
        let (slots, items): (Vec<usize>, Vec<_>) = directs.into_iter().unzip();
        match store.store_envelopes(items, Origin::Federation(peer)).await {
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
        let deliveries = groups.into_iter().map(|(_, delivery)| delivery).collect();
        match store.store_group_deliveries(deliveries).await {
            Ok(stored) => {
                let mut stored = stored.into_iter();
                for (index, count) in sizes {
                    outcomes[index] = stored
                        .by_ref()
                        .take(count)
                        .map(ingest::send_outcome)
                        .collect();
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
            metrics.envelope_stored(kind, StoredFrom::Federation);
        }
    }
    outcomes.into_iter().flatten().collect()
}
