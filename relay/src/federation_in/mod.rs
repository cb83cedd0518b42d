//! Inbound federation streams (`/tidings/federation/1`): another relay forwards, claims,
//! watches presence, passes typing notices, or hands a user over.

mod awaited;
mod context;
mod forward;
mod senders;

use std::{sync::Arc, time::Duration};

use futures::{
    AsyncReadExt, StreamExt, future::BoxFuture, io::WriteHalf, stream::FuturesUnordered,
};
use libp2p::{PeerId, Stream};
use tidings_protocol::{
    BoundedVec, ErrorAnswer, ErrorCode, HomeRecord, MailboxItem,
    client::SendOutcome,
    federation::{FederationFrame, FederationRequest, FederationResponse},
    framing, now_ms,
};

use crate::{
    ingest::{self, storage_answer},
    metrics::{Refusal, StoredFrom, StreamKind},
    presence::check_ephemeral,
    router::ProtocolHandler,
    store::{DescriptorsOutcome, HandoffItem},
    streams::read_frame_timed_owned,
};
pub(crate) use awaited::AwaitedGroups;
pub(crate) use context::FederationContext;
pub(crate) use senders::SenderCheck;

/// How long writing an answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long requests already taken may take to finish once the stream or the relay stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type Answer = Result<FederationResponse, ErrorAnswer>;

/// The `/tidings/federation/1` handler: serves other relays' streams.
#[derive(Clone)]
pub(crate) struct FederationHandler(Arc<FederationContext>);

impl FederationHandler {
    pub fn new(context: FederationContext) -> Self {
        Self(Arc::new(context))
    }
}

impl ProtocolHandler for FederationHandler {
    const KIND: StreamKind = StreamKind::Federation;

    async fn accept(self, peer: PeerId, stream: Stream) {
        serve(&self.0, peer, stream).await;
    }
}

/// Requests of one federation stream handled at once. More are not read until one is
/// answered (backpressure on the sending relay). The sender keeps its own order: the
/// forwarder has at most one batch in flight per lane, and each sender's envelopes stay in
/// one lane.
const REQUESTS_IN_FLIGHT: usize = 8;

/// Serves one inbound federation stream until it ends or the relay stops: up to
/// [`REQUESTS_IN_FLIGHT`] requests at once, each answered (by id) as soon as it is done.
async fn serve(cx: &FederationContext, peer: PeerId, stream: Stream) {
    let _live = cx.metrics.federation_stream_opened();
    let (reader, mut writer) = stream.split();
    let mut read = Box::pin(read_frame_timed_owned(reader, Vec::new(), cx.read_timeouts));
    let mut in_flight = FuturesUnordered::new();
    loop {
        let can_read = in_flight.len() < REQUESTS_IN_FLIGHT;
        tokio::select! {
            _ = cx.shutdown.cancelled() => break,
            Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                if !write_answer(&mut writer, answer).await {
                    return;
                }
            }
            (reader, buf, result) = &mut read, if can_read => {
                match result {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        if let Some(reason) = error.deadline() {
                            cx.metrics.stream_timed_out(StreamKind::Federation, reason);
                        }
                        tracing::debug!(%peer, %error, "closing a federation stream");
                        break;
                    }
                }
                match FederationFrame::decode(&buf) {
                    Ok(FederationFrame::Request { id, body }) => {
                        in_flight.push(Box::pin(async move {
                            FederationFrame::Response { id, body: handle(cx, peer, body).await }
                        }) as BoxFuture<'_, FederationFrame>);
                    }
                    // A request this relay cannot read but whose id it can (say, a kind from
                    // a newer version): an error answer, and the stream goes on.
                    Err(error) => match tidings_protocol::framing::request_id(&buf) {
                        Some(id) => {
                            let body = Err(ErrorAnswer::new(ErrorCode::Malformed, error.to_string()));
                            if !write_answer(&mut writer, FederationFrame::Response { id, body }).await {
                                return;
                            }
                        }
                        None => {
                            tracing::info!(%peer, %error, "closing a federation stream that sent garbage");
                            break;
                        }
                    },
                    Ok(FederationFrame::Response { .. }) => {
                        tracing::info!(%peer, "closing a federation stream that sent a response");
                        break;
                    }
                }
                read = Box::pin(read_frame_timed_owned(reader, buf, cx.read_timeouts));
            }
        }
    }
    // Requests taken are answered: what they stored is acknowledged.
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, in_flight.next()).await {
        if !write_answer(&mut writer, answer).await {
            return;
        }
    }
    let _ = futures::AsyncWriteExt::close(&mut writer).await;
}

/// Writes one answer; false if the stream is gone or the other relay does not read.
async fn write_answer(writer: &mut WriteHalf<Stream>, answer: FederationFrame) -> bool {
    let written = tokio::time::timeout(WRITE_TIMEOUT, framing::write_frame(writer, &answer)).await;
    matches!(written, Ok(Ok(())))
}

fn stored(outcomes: Vec<SendOutcome>) -> Answer {
    BoundedVec::new(outcomes)
        .map(|outcomes| FederationResponse::Stored { outcomes })
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
}

async fn handle(cx: &FederationContext, peer: PeerId, request: FederationRequest) -> Answer {
    match request {
        FederationRequest::Forward { items, certs } => {
            let outcomes = match cx.disk.admit() {
                Ok(()) => forward::forward(cx, peer, items.into_vec(), &certs).await,
                Err(answer) => {
                    let recipients = items.iter().map(|item| item.recipients.len()).sum();
                    vec![SendOutcome::Rejected(answer); recipients]
                }
            };
            cx.metrics
                .envelopes_answered(&outcomes, StoredFrom::Federation);
            stored(outcomes)
        }
        FederationRequest::Claim { device, requester } => {
            let mut answers = cx.claims.serve(peer, requester, &[device]).await?;
            match answers.pop() {
                Some(answer) => answer.map(|bundle| FederationResponse::Bundle(Box::new(bundle))),
                None => Err(ErrorAnswer::new(ErrorCode::Unavailable, "not handled")),
            }
        }
        FederationRequest::ClaimBundles { devices, requester } => {
            let bundles = cx.claims.serve(peer, requester, devices.as_slice()).await?;
            BoundedVec::new(bundles)
                .map(|bundles| FederationResponse::Bundles { bundles })
                .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
        }
        FederationRequest::DeviceList { user } => {
            let list = cx
                .store
                .home_device_list(user, cx.self_peer.to_string())
                .await
                .map_err(storage_answer)?;
            Ok(FederationResponse::DeviceList(list.map(Box::new)))
        }
        FederationRequest::Profile { user } => {
            crate::profiles::serve(&cx.store, &cx.self_peer.to_string(), user).await
        }
        FederationRequest::GroupVersion { group } => cx
            .store
            .group_version(group)
            .await
            .map(FederationResponse::GroupVersion)
            .map_err(storage_answer),
        FederationRequest::Descriptors { versions } => {
            cx.disk.admit()?;
            let kib: usize = versions
                .iter()
                .map(|version| version.encode().len().div_ceil(1024))
                .sum();
            if cx.descriptor_rate.take(peer, [kib]) == 0 {
                tracing::info!(%peer, kib, "another relay is over its descriptor rate");
                cx.metrics.limits.refused(Refusal::DescriptorRate);
                return Err(ErrorAnswer::new(
                    ErrorCode::RateLimited,
                    "your relay is sending group descriptors too fast; retry later",
                ));
            }
            // Taken without a member here only from the relay this relay asked for them.
            let awaited = versions.first().is_some_and(|first| {
                let group = first.descriptor.group;
                versions.iter().all(|v| v.descriptor.group == group)
                    && cx.awaited_groups.is_expected(peer, group)
            });
            match cx
                .store
                .store_descriptors(versions.into_vec(), awaited)
                .await
                .map_err(storage_answer)?
            {
                DescriptorsOutcome::Stored { .. } => Ok(FederationResponse::DescriptorsStored),
                DescriptorsOutcome::Rejected(error) => Err(ErrorAnswer::new(
                    ErrorCode::BadDescriptor,
                    error.to_string(),
                )),
                DescriptorsOutcome::NoMemberHere => {
                    cx.metrics.limits.refused(Refusal::DescriptorNoMember);
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
            cx.disk.admit()?;
            handoff(cx, peer, &home, &previous, items.into_vec()).await
        }
        FederationRequest::StatusForward { poster, post } => {
            cx.disk.admit()?;
            cx.status
                .take_forwarded(&cx.directory, peer, poster, *post)
                .await
        }
        FederationRequest::WatchPresence { watcher, users } => {
            let reports = cx
                .presence
                .watch_for_relay(peer, watcher, users.into_vec())
                .await?;
            BoundedVec::new(reports)
                .map(|reports| FederationResponse::Presence { reports })
                .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
        }
        FederationRequest::PresenceChanged { report, watchers } => {
            cx.presence
                .watched_from(peer, report, watchers.into_vec())
                .await;
            Ok(FederationResponse::PresenceTaken)
        }
        FederationRequest::Ephemeral {
            envelope,
            recipients,
            cert,
        } => {
            let sender = check_ephemeral(&envelope)?.sender;
            let mut unbound = cx
                .senders
                .check(&cx.directory, peer, std::slice::from_ref(&cert), [sender])
                .await;
            if let Some(answer) = unbound.remove(&sender) {
                return Err(answer);
            }
            let sender = sender.user;
            // Whether a recipient is ours is a store read: no request may make us query
            // the DHT once per recipient.
            let mut here = Vec::with_capacity(recipients.len());
            for user in recipients.iter() {
                if matches!(cx.directory.is_local(*user).await, Ok(true)) {
                    here.push(*user);
                }
            }
            let reached = cx
                .presence
                .pass_ephemeral_here(&envelope, sender, &here)
                .await;
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
    cx: &FederationContext,
    peer: PeerId,
    home: &HomeRecord,
    previous: &HomeRecord,
    items: Vec<MailboxItem>,
) -> Answer {
    check_handoff(&cx.self_peer.to_string(), peer, home, previous)?;
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
    let (good, refused) = ingest::verify(None, None, raws).await;
    let mut outcomes: Vec<Option<SendOutcome>> = vec![None; slots.len()];
    for (position, refusal) in positions.iter().zip(refused) {
        outcomes[*position] = refusal;
    }
    for (index, verified) in good {
        slots[positions[index]] = Some(HandoffItem::Envelope(verified.for_user(home.user)));
    }
    let (indexes, to_store): (Vec<usize>, Vec<HandoffItem>) = slots
        .into_iter()
        .enumerate()
        .filter_map(|(index, slot)| slot.map(|item| (index, item)))
        .unzip();
    let results = cx
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
