//! A session's held-back envelopes: asking again for their senders' lists, then settling them.

use std::{collections::VecDeque, time::Duration};

use crate::runtime::{Instant, JoinHandle};
use tidings_protocol::{Envelope, RawEnvelope, Recipient, UserId};

use crate::{
    client::Client,
    connection::Connection,
    device_lists::refresh_list,
    error::ClientError,
    events::Event,
    list_checks::LIST_RETRY_AFTER,
    store::{Received, StoreError},
};

/// Most lists asked for again at one retry (each lookup of a relay that is away takes its
/// home relay seconds of retries): the users with held envelopes take turns past it.
const LOOKUPS_PER_RETRY: usize = 4;

/// Longest pause between two retries: the first comes [`LIST_RETRY_AFTER`] after a failed
/// lookup, and each one that finds the relay still away doubles the pause up to this (a
/// lookup at a relay that is away holds the session for seconds).
const RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// The senders of direct envelopes in a batch whose list was not fetched by the last lookup
/// (the one just made for the batch, or, when it was skipped, an earlier one): an envelope
/// of theirs from a device their held list does not name is held back.
pub(crate) fn unreachable_senders(
    client: &Client,
    envelopes: &[(Envelope, RawEnvelope)],
) -> Vec<UserId> {
    let mut users: Vec<UserId> = envelopes
        .iter()
        .filter(|(envelope, _)| matches!(envelope.recipient, Recipient::Direct(_)))
        .map(|(envelope, _)| envelope.sender.user)
        .filter(|user| !client.inner.list_checks.is_reached(user))
        .collect();
    users.sort_unstable();
    users.dedup();
    users
}

/// A session's held-back envelopes: whose they are, and when their lists are asked for
/// again.
pub(crate) struct HeldBack {
    /// Users with held envelopes (at most [`crate::store::HELD_TOTAL`]).
    users: Vec<UserId>,
    /// When the lists not fetched are asked for again (and expired envelopes failed).
    retry_at: Option<Instant>,
    /// The pause before the retry after the next one.
    pause: Duration,
    /// Where in `users` the next retry starts asking (they take turns).
    next_turn: usize,
    /// Settling on the blocking pool; awaited again after a cancelled call, so its events
    /// are not lost.
    settling: Option<JoinHandle<Result<Received, StoreError>>>,
}

impl Default for HeldBack {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            retry_at: None,
            pause: LIST_RETRY_AFTER,
            next_turn: 0,
            settling: None,
        }
    }
}

impl HeldBack {
    /// Adds users who now have held envelopes; a new one makes the retries start over from
    /// the shortest pause.
    pub(crate) fn add(&mut self, users: &[UserId]) {
        for user in users {
            if !self.users.contains(user) {
                self.users.push(*user);
                self.pause = LIST_RETRY_AFTER;
            }
        }
    }

    /// When a session must wake up to ask for lists again, if it holds envelopes.
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        if self.users.is_empty() {
            return None;
        }
        Some(self.retry_at.unwrap_or_else(Instant::now))
    }

    /// Whether settling has work now: a list of a user with held envelopes was fetched
    /// (by any lookup: a batch, a device-list notice, a send), or the retry is due.
    pub(crate) fn is_due(&self, client: &Client) -> bool {
        self.settling.is_some()
            || self.wake_at().is_some_and(|at| Instant::now() >= at)
            || self
                .users
                .iter()
                .any(|user| client.inner.list_checks.is_reached(user))
    }

    /// Asks again for the lists not fetched whose retry time came (the list-check
    /// schedule), then replays the held envelopes of every user whose list was fetched and
    /// fails those held too long. `None` if there was nothing to do.
    pub(crate) async fn settle(
        &mut self,
        client: &Client,
        connection: &Connection,
        events: &mut VecDeque<Event>,
    ) -> Result<Option<Received>, ClientError> {
        if self.settling.is_none() {
            let retry = self.wake_at().is_some_and(|at| Instant::now() >= at);
            if retry {
                let start = self.next_turn % self.users.len().max(1);
                let due: Vec<UserId> = self.users[start..]
                    .iter()
                    .chain(&self.users[..start])
                    .copied()
                    .filter(|user| {
                        !client.inner.list_checks.is_reached(user)
                            && !client.inner.list_checks.is_fresh(user)
                    })
                    .take(LOOKUPS_PER_RETRY)
                    .collect();
                for user in due {
                    refresh_list(client, connection, user, events).await?;
                }
                self.next_turn = start + LOOKUPS_PER_RETRY;
                self.retry_at = Some(Instant::now() + self.pause);
                self.pause = (self.pause * 2).min(RETRY_MAX);
            }
            let fresh: Vec<UserId> = self
                .users
                .iter()
                .copied()
                .filter(|user| client.inner.list_checks.is_reached(user))
                .collect();
            if !retry && fresh.is_empty() {
                return Ok(None);
            }
            self.settling = Some(
                client
                    .spawn_blocking(move |inner| inner.store.settle_held(&inner.identity, &fresh)),
            );
        }
        let Some(settling) = &mut self.settling else {
            return Ok(None);
        };
        let settled = settling.await;
        self.settling = None;
        let received = settled.map_err(|_| ClientError::Cancelled)??;
        self.users.clone_from(&received.held_back);
        if self.users.is_empty() {
            self.retry_at = None;
            self.pause = LIST_RETRY_AFTER;
        }
        Ok(Some(received))
    }
}
