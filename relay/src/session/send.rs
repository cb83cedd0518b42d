//! `Send`: a device's envelopes, stored for local users or queued for other relays.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode,
    client::{EnvelopeBatch, Response, SendOutcome},
    envelope::SenderKey,
};

use super::{Answer, context::ClientContext};
use crate::{ingest, metrics::StoredFrom};

/// Handles one `Send` request. The envelopes beyond the user's rate limit are answered
/// `rate_limited` (the client keeps them and retries); the ones before them go on as usual.
/// `key` is the session's device key, decompressed once for all its requests.
pub(super) async fn handle(
    cx: Arc<ClientContext>,
    me: Address,
    key: Option<SenderKey>,
    batch: EnvelopeBatch,
) -> Answer {
    let mut raws = batch.into_vec();
    if let Err(answer) = cx.disk.admit() {
        let outcomes: Vec<SendOutcome> = raws
            .iter()
            .map(|_| SendOutcome::Rejected(answer.clone()))
            .collect();
        cx.metrics.envelopes_answered(&outcomes, StoredFrom::Client);
        return BoundedVec::new(outcomes)
            .map(|outcomes| Response::Sent { outcomes })
            .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()));
    }
    let granted = cx
        .user_rate
        .take(me.user, std::iter::repeat_n(1, raws.len()));
    let refused = raws.split_off(granted);
    let mut outcomes = if raws.is_empty() {
        Vec::new()
    } else {
        ingest::ingest(
            &cx.store,
            &cx.metrics,
            &cx.user_rate,
            &me,
            key.as_ref(),
            raws,
        )
        .await
    };
    outcomes.extend(
        refused
            .iter()
            .map(|_| ingest::rate_limited(ingest::SENDING_TOO_FAST)),
    );
    cx.metrics.envelopes_answered(&outcomes, StoredFrom::Client);
    BoundedVec::new(outcomes)
        .map(|outcomes| Response::Sent { outcomes })
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
}
