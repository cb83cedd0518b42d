//! Groups this relay asked another relay to bring it up to date on, and from whom.
//!
//! A relay keeps a group's descriptors only if a member lives here. A long chain may name
//! that member only in a later chunk than the first ones another relay sends; the chunks
//! are taken without a member only from the relay whose forward for members here this relay
//! answered `group_out_of_date`, for a while.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use libp2p::PeerId;
use tidings_protocol::GroupId;

/// How long a relay may take to send the versions it was asked for.
const AWAIT_FOR: Duration = Duration::from_secs(600);

/// Most groups awaited at once.
const MAX_AWAITED: usize = 4096;

/// Which relay is bringing this relay up to date on which group.
#[derive(Default)]
pub(crate) struct AwaitedGroups {
    awaited: Mutex<HashMap<(PeerId, GroupId), Instant>>,
}

impl AwaitedGroups {
    /// Notes that `peer` was asked for the versions of `group` this relay lacks.
    pub fn expect(&self, peer: PeerId, group: GroupId) {
        let mut awaited = self
            .awaited
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if awaited.len() >= MAX_AWAITED {
            awaited.retain(|_, since| since.elapsed() < AWAIT_FOR);
            if awaited.len() >= MAX_AWAITED {
                return;
            }
        }
        awaited.insert((peer, group), Instant::now());
    }

    /// Whether `peer` was asked for `group` lately.
    pub fn is_expected(&self, peer: PeerId, group: GroupId) -> bool {
        let awaited = self
            .awaited
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        awaited
            .get(&(peer, group))
            .is_some_and(|since| since.elapsed() < AWAIT_FOR)
    }
}
