//! `PublishHome`: a user names their home relay (here: publish it; elsewhere: hand over).

use std::sync::Arc;

use tidings_protocol::{Address, ErrorAnswer, ErrorCode, HomeRecord, client::Response, now_ms};

use super::{Answer, context::ClientContext};
use crate::{ingest::storage_answer, store::SetHomeOutcome};

fn bad(detail: impl Into<String>) -> ErrorAnswer {
    ErrorAnswer::new(ErrorCode::BadHomeRecord, detail)
}

/// Verifies the record, stores it, and publishes it (or starts the handoff if the user left).
pub(super) async fn publish(cx: Arc<ClientContext>, me: Address, record: HomeRecord) -> Answer {
    if record.user != me.user {
        return Err(bad("the record is for another user"));
    }
    record
        .verify(now_ms())
        .map_err(|error| bad(error.to_string()))?;
    if record.relay.parse::<libp2p::PeerId>().is_err() {
        return Err(bad("the record does not name a relay peer id"));
    }
    match cx
        .store
        .set_home(record.clone())
        .await
        .map_err(storage_answer)?
    {
        SetHomeOutcome::Stored { moved_away } => {
            cx.network.put_home(record).await;
            if moved_away {
                tracing::info!(user = %me.user, "user moved away; handing their mailbox on");
                cx.handoffs.start(me.user);
            }
            Ok(Response::HomePublished)
        }
        SetHomeOutcome::Stale { known } => Err(bad(format!(
            "stale: sequence {} is not above {known}",
            record.seq
        ))),
        SetHomeOutcome::NotRegistered => Err(ErrorAnswer::new(
            ErrorCode::NotRegistered,
            "register this device first",
        )),
    }
}
