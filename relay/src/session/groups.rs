//! `GroupVersions`: a member's device fetches descriptor versions it missed.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode, GroupId, client::Response,
    federation::MAX_DESCRIPTORS_PER_REQUEST,
};

use super::{Answer, context::ClientContext};
use crate::ingest::storage_answer;

/// Answers versions of `group` from `from` on, to a user who is a member of the newest one
/// held or of one of the versions asked for (a member the last of them removed learns why).
pub(super) async fn versions(
    cx: Arc<ClientContext>,
    me: Address,
    group: GroupId,
    from: u64,
) -> Answer {
    let store = &cx.store;
    let head = store.group_version(group).await.map_err(storage_answer)?;
    let newest = store
        .group_versions(group, head, 1)
        .await
        .map_err(storage_answer)?;
    let versions = store
        .group_versions(group, from.max(1), MAX_DESCRIPTORS_PER_REQUEST)
        .await
        .map_err(storage_answer)?;
    let member = newest
        .iter()
        .chain(&versions)
        .any(|version| version.descriptor.is_member(&me.user));
    if !member {
        return Err(ErrorAnswer::new(
            ErrorCode::NotMember,
            format!("you are not a member of group {group}"),
        ));
    }
    let versions = BoundedVec::new(versions)
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))?;
    Ok(Response::GroupVersions { versions })
}
