//! `Send`: a device's envelopes, stored for local users or queued for other relays.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode,
    client::{EnvelopeBatch, RelayFrame, Response, SendOutcome},
    envelope::SenderKey,
};

use super::context::ClientContext;
use crate::{ingest, metrics::StoredFrom};

/// Most envelopes of consecutive `Send` requests checked and stored together (a request
/// alone may still carry its whole batch).
pub(super) const MAX_COALESCED_ENVELOPES: usize = 256;

/// `Send` requests read one after another and not handled yet: they are checked and stored
/// as one batch, so a burst of them rides one commit.
#[derive(Default)]
pub(super) struct PendingSends {
    requests: Vec<(u64, EnvelopeBatch)>,
    envelopes: usize,
}

impl PendingSends {
    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether a request of `count` envelopes joins the others (else they go first).
    pub fn has_room(&self, count: usize) -> bool {
        self.requests.is_empty() || self.envelopes + count <= MAX_COALESCED_ENVELOPES
    }

    pub fn push(&mut self, id: u64, batch: EnvelopeBatch) {
        self.envelopes += batch.len();
        self.requests.push((id, batch));
    }

    /// The waiting requests, in order, if any.
    pub fn take(&mut self) -> Option<Vec<(u64, EnvelopeBatch)>> {
        self.envelopes = 0;
        let requests = std::mem::take(&mut self.requests);
        (!requests.is_empty()).then_some(requests)
    }
}

/// Handles consecutive `Send` requests as one batch (one verification pass, one store
/// operation); one answer each, in order. The envelopes beyond the user's rate limit are
/// answered `rate_limited` (the client keeps them and retries); the ones before them go on as
/// usual. `key` is the session's device key, decompressed once for all its requests.
pub(super) async fn handle(
    cx: Arc<ClientContext>,
    me: Address,
    key: Option<SenderKey>,
    requests: Vec<(u64, EnvelopeBatch)>,
) -> Vec<RelayFrame> {
    let answer = |id, outcomes: Vec<SendOutcome>| {
        cx.metrics.envelopes_answered(&outcomes, StoredFrom::Client);
        let body = BoundedVec::new(outcomes)
            .map(|outcomes| Response::Sent { outcomes })
            .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()));
        RelayFrame::Response { id, body }
    };
    if let Err(refusal) = cx.disk.admit() {
        return requests
            .into_iter()
            .map(|(id, batch)| {
                answer(
                    id,
                    vec![SendOutcome::Rejected(refusal.clone()); batch.len()],
                )
            })
            .collect();
    }
    // (request id, envelopes granted, envelopes over the rate limit)
    let mut shapes = Vec::with_capacity(requests.len());
    let mut granted_raws = Vec::new();
    for (id, batch) in requests {
        let mut raws = batch.into_vec();
        let granted = cx
            .user_rate
            .take(me.user, std::iter::repeat_n(1, raws.len()));
        let refused = raws.split_off(granted).len();
        shapes.push((id, raws.len(), refused));
        granted_raws.extend(raws);
    }
    let outcomes = if granted_raws.is_empty() {
        Vec::new()
    } else {
        ingest::ingest(
            &cx.store,
            &cx.metrics,
            &cx.user_rate,
            &me,
            key.as_ref(),
            granted_raws,
        )
        .await
    };
    let mut outcomes = outcomes.into_iter();
    shapes
        .into_iter()
        .map(|(id, granted, refused)| {
            let mut mine: Vec<SendOutcome> = outcomes.by_ref().take(granted).collect();
            mine.extend(
                std::iter::repeat_with(|| ingest::rate_limited(ingest::SENDING_TOO_FAST))
                    .take(refused),
            );
            answer(id, mine)
        })
        .collect()
}
