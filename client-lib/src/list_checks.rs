//! When each user's device list was last asked for in this run (in memory): a list older
//! than [`LIST_MAX_AGE`] is asked for again before it is used to send.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tidings_protocol::UserId;

/// How long a held list is used before it is asked for again when sending (so a removed
/// device stops getting copies and group keys soon, even if nothing else tells us).
pub(crate) const LIST_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// After a list could not be had (its home relay away), how long the held one is used before
/// asking again: every send would otherwise wait on the lookup anew.
pub(crate) const LIST_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Most users whose last list check is remembered (past it, every list counts as old).
const MAX_CHECKED_USERS: usize = 4096;

/// When each user's list was last asked for in this run.
#[derive(Debug, Default)]
pub(crate) struct ListChecks(Mutex<HashMap<UserId, Instant>>);

impl ListChecks {
    /// Whether `user`'s list was asked for less than [`LIST_MAX_AGE`] ago.
    pub(crate) fn is_fresh(&self, user: &UserId) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|checked| checked.get(user).copied())
            .is_some_and(|at| at.elapsed() < LIST_MAX_AGE)
    }

    /// Records that `user`'s list was just asked for.
    pub(crate) fn checked(&self, user: UserId) {
        if let Ok(mut checked) = self.0.lock() {
            if checked.len() >= MAX_CHECKED_USERS {
                checked.clear();
            }
            checked.insert(user, Instant::now());
        }
    }

    /// Records that `user`'s list could not be had just now: the held one is used for
    /// [`LIST_RETRY_AFTER`] before asking again.
    pub(crate) fn failed(&self, user: UserId) {
        if let Ok(mut checked) = self.0.lock() {
            if checked.len() >= MAX_CHECKED_USERS {
                checked.clear();
            }
            let back = LIST_MAX_AGE.saturating_sub(LIST_RETRY_AFTER);
            let at = Instant::now()
                .checked_sub(back)
                .unwrap_or_else(Instant::now);
            checked.insert(user, at);
        }
    }

    /// Forgets when `user`'s list was asked for: it is asked for again before it is next
    /// used (the account told us its list changed).
    pub(crate) fn forget(&self, user: &UserId) {
        if let Ok(mut checked) = self.0.lock() {
            checked.remove(user);
        }
    }
}
