//! Whether each user's last device-list lookup in this run fetched the list (or could not).

use std::{collections::HashMap, sync::Mutex};

use tidings_protocol::UserId;

/// Most users whose last list lookup is remembered (past it, every user counts as not
/// reached until looked up again).
const MAX_REACH_USERS: usize = 4096;

/// Whether each user's last device-list lookup in this run fetched their list (true) or
/// could not (false).
#[derive(Debug, Default)]
pub(crate) struct ListReach(Mutex<HashMap<UserId, bool>>);

impl ListReach {
    /// Records that `user`'s list was just fetched.
    pub(crate) fn reached(&self, user: UserId) {
        self.set(user, true);
    }

    /// Records that `user`'s list could not be fetched just now.
    pub(crate) fn missed(&self, user: UserId) {
        self.set(user, false);
    }

    fn set(&self, user: UserId, reached: bool) {
        if let Ok(mut reach) = self.0.lock() {
            if reach.len() >= MAX_REACH_USERS && !reach.contains_key(&user) {
                reach.clear();
            }
            reach.insert(user, reached);
        }
    }

    /// Whether the last lookup of `user`'s list in this run fetched it.
    pub(crate) fn is_reached(&self, user: &UserId) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|reach| reach.get(user).copied())
            .unwrap_or(false)
    }
}
