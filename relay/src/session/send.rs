//! `Send`: a device's envelopes, stored for local users or queued for other relays.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode,
    client::{EnvelopeBatch, Response},
};

use super::{Answer, Shared};
use crate::ingest;

/// Handles one `Send` request.
pub(super) async fn handle(shared: Arc<Shared>, me: Address, batch: EnvelopeBatch) -> Answer {
    let outcomes = ingest::ingest(&shared.store, &shared.metrics, &me, batch.into_vec()).await;
    BoundedVec::new(outcomes)
        .map(|outcomes| Response::Sent { outcomes })
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
}
