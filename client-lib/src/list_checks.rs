//! When each user's device list was last asked for in this run (in memory): a list older
//! than [`LIST_MAX_AGE`] is asked for again before it is used to send, and a contact's
//! notices that their list changed start a lookup at most once per [`NOTICE_LOOKUP_GAP`],
//! and whether the last lookup fetched the list (envelopes held back wait for that).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tidings_protocol::UserId;

use crate::runtime::Instant;

/// How long a held list is used before it is asked for again when sending (so a removed
/// device stops getting copies and group keys soon, even if nothing else tells us).
pub(crate) const LIST_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// After a list could not be had (its home relay away), how long the held one is used before
/// asking again: every send would otherwise wait on the lookup anew.
pub(crate) const LIST_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Least time between two lookups a user's `DevicesChanged` notices start: a peer sending
/// notices with ever higher versions (which cannot be checked before asking) costs at most
/// one lookup per this time; a notice inside it still marks the list old, so it is asked for
/// before it is next used.
pub(crate) const NOTICE_LOOKUP_GAP: Duration = Duration::from_secs(10);

/// Most users whose last list check (or notice lookup) is remembered (past it, every list
/// counts as old and every notice starts a lookup).
const MAX_CHECKED_USERS: usize = 4096;

/// When each user's list was last asked for in this run, whether that fetched it, and when a
/// notice last started a lookup.
#[derive(Debug, Default)]
pub(crate) struct ListChecks(Mutex<Checks>);

#[derive(Debug, Default)]
struct Checks {
    asked: HashMap<UserId, Instant>,
    reached: HashMap<UserId, bool>,
    noticed: HashMap<UserId, Instant>,
}

/// Puts `user` with `value` in `map`, forgetting everyone when it is full.
fn remember<V>(map: &mut HashMap<UserId, V>, user: UserId, value: V) {
    if map.len() >= MAX_CHECKED_USERS && !map.contains_key(&user) {
        map.clear();
    }
    map.insert(user, value);
}

impl ListChecks {
    /// Whether `user`'s list was asked for less than [`LIST_MAX_AGE`] ago.
    pub(crate) fn is_fresh(&self, user: &UserId) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|checks| checks.asked.get(user).copied())
            .is_some_and(|at| at.elapsed() < LIST_MAX_AGE)
    }

    /// Whether the last lookup of `user`'s list in this run fetched it.
    pub(crate) fn is_reached(&self, user: &UserId) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|checks| checks.reached.get(user).copied())
            .unwrap_or(false)
    }

    /// Records that `user`'s list was just asked for and fetched.
    pub(crate) fn checked(&self, user: UserId) {
        if let Ok(mut checks) = self.0.lock() {
            remember(&mut checks.asked, user, Instant::now());
            remember(&mut checks.reached, user, true);
        }
    }

    /// Records that `user`'s list could not be had just now: the held one is used for
    /// [`LIST_RETRY_AFTER`] before asking again.
    pub(crate) fn failed(&self, user: UserId) {
        if let Ok(mut checks) = self.0.lock() {
            let back = LIST_MAX_AGE.saturating_sub(LIST_RETRY_AFTER);
            let at = Instant::now()
                .checked_sub(back)
                .unwrap_or_else(Instant::now);
            remember(&mut checks.asked, user, at);
            remember(&mut checks.reached, user, false);
        }
    }

    /// `user` told us their list changed: marks the held one old, and answers whether to ask
    /// for it right away (no notice of theirs started a lookup in the last
    /// [`NOTICE_LOOKUP_GAP`]).
    pub(crate) fn noticed(&self, user: UserId) -> bool {
        let Ok(mut checks) = self.0.lock() else {
            return false;
        };
        checks.asked.remove(&user);
        let now = Instant::now();
        if checks
            .noticed
            .get(&user)
            .is_some_and(|at| now.duration_since(*at) < NOTICE_LOOKUP_GAP)
        {
            return false;
        }
        remember(&mut checks.noticed, user, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(byte: u8) -> UserId {
        UserId::from_bytes([byte; 32])
    }

    #[test]
    fn notices_start_one_lookup_per_gap_and_always_mark_the_list_old() {
        let checks = ListChecks::default();
        checks.checked(user(1));
        assert!(checks.is_fresh(&user(1)));
        assert!(checks.noticed(user(1)), "the first notice asks at once");
        assert!(!checks.is_fresh(&user(1)));
        checks.checked(user(1));
        for _ in 0..100 {
            assert!(
                !checks.noticed(user(1)),
                "later notices inside the gap do not ask"
            );
            assert!(
                !checks.is_fresh(&user(1)),
                "but the list is asked for before use"
            );
        }
        assert!(
            checks.noticed(user(2)),
            "another user's notice is not held back"
        );
    }
}
