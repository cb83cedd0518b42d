//! Inbound federation streams: another relay forwards, claims, or hands a user over.

use std::{sync::Arc, time::Duration};

use futures::AsyncReadExt;
use libp2p::{PeerId, Stream};
use tidings_protocol::{
    BoundedVec, ErrorAnswer, ErrorCode, HomeRecord, MailboxItem,
    client::SendOutcome,
    federation::{FederationFrame, FederationRequest, FederationResponse},
    framing, now_ms,
};

use crate::{
    ingest::{self, storage_answer},
    shared::Shared,
    store::{ClaimOutcome, HandoffItem, Origin},
};

/// How long writing an answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

type Answer = Result<FederationResponse, ErrorAnswer>;

/// Serves one inbound federation stream until it ends or the relay stops.
pub(crate) async fn serve(shared: Arc<Shared>, peer: PeerId, stream: Stream) {
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
        let (id, request) = match FederationFrame::decode(&buf) {
            Ok(FederationFrame::Request { id, body }) => (id, body),
            Ok(FederationFrame::Response { .. }) | Err(_) => {
                tracing::info!(%peer, "closing a federation stream that sent garbage");
                break;
            }
        };
        let body = handle(&shared, peer, request).await;
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
        FederationRequest::Forward { envelopes } => stored(
            ingest::ingest(
                &shared.store,
                Origin::Federation,
                None,
                envelopes.into_vec(),
            )
            .await,
        ),
        FederationRequest::Claim { user } => {
            match shared
                .store
                .claim_bundle(user)
                .await
                .map_err(storage_answer)?
            {
                ClaimOutcome::Bundle(bundle) => Ok(FederationResponse::Bundle(bundle)),
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
        FederationRequest::Handoff {
            home,
            previous,
            items,
        } => handoff(shared, peer, &home, &previous, items.into_vec()).await,
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
    for (index, envelope) in good {
        slots[positions[index]] = Some(HandoffItem::Envelope(envelope));
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
