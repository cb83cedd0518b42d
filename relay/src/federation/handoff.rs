//! Handing a moved user's mailbox to their new home relay, batch by batch, until empty.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use tidings_protocol::{
    BoundedVec, MailboxItem, UserId,
    client::SendOutcome,
    federation::{FederationRequest, FederationResponse},
    limits::MAX_BATCH_ENVELOPES,
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Links, remote::Remote};
use crate::store::Store;

/// Most mailbox bytes in one handoff batch.
const BATCH_MAX_BYTES: usize = 512 * 1024;

/// First and longest pause after a failed handoff attempt.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Hands moved users' mailboxes on, one task per user. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Handoffs {
    store: Store,
    links: Links,
    /// This relay's peer id, as home records name it.
    self_peer: String,
    /// Where the handoff tasks run.
    tasks: TaskTracker,
    /// Cancelled when the relay stops.
    shutdown: CancellationToken,
    /// Users whose mailbox is being handed on right now.
    active: Arc<Mutex<HashSet<UserId>>>,
}

impl Handoffs {
    pub fn new(
        store: Store,
        links: Links,
        self_peer: String,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            links,
            self_peer,
            tasks,
            shutdown,
            active: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Starts handing `user`'s mailbox on, unless that is already under way.
    pub(crate) fn start(&self, user: UserId) {
        {
            let mut active = self
                .active
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if !active.insert(user) {
                return;
            }
        }
        let handoffs = self.clone();
        self.tasks.spawn(async move {
            handoffs.run(user).await;
            handoffs
                .active
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .remove(&user);
        });
    }

    async fn run(&self, user: UserId) {
        let mut failures = 0u32;
        loop {
            match self.step(user).await {
                Ok(true) => failures = 0,
                Ok(false) => return,
                Err(reason) => {
                    failures += 1;
                    let pause = RETRY_MIN
                        .saturating_mul(1 << failures.min(8))
                        .min(RETRY_MAX);
                    tracing::info!(%user, %reason, ?pause, "handoff to the new home failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
            if self.shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Hands on one batch. Ok(true): a batch moved; Ok(false): nothing (more) to do.
    async fn step(&self, user: UserId) -> Result<bool, String> {
        let record = self
            .store
            .user(user)
            .await
            .map_err(|error| error.to_string())?
            .ok_or("the user is not registered here")?;
        let (Some(home), Some(here)) = (record.home.clone(), record.here.clone()) else {
            return Ok(false);
        };
        if home.relay == self.self_peer {
            return Ok(false);
        }
        // Each device's mailbox in turn; the new home stores a direct envelope for the device
        // it names and anything else for every device of the user there.
        let mut pending = None;
        let devices = self
            .store
            .devices_of(user)
            .await
            .map_err(|error| error.to_string())?;
        for record in devices {
            let device = record.cert.device;
            let cursor = self
                .store
                .cursor(device)
                .await
                .map_err(|error| error.to_string())?;
            if cursor.pending() > 0 {
                pending = Some((device, cursor));
                break;
            }
        }
        let Some((device, cursor)) = pending else {
            tracing::info!(%user, relay = %home.relay, "handoff complete");
            return Ok(false);
        };
        let entries = self
            .store
            .mailbox_range(
                device,
                cursor.acked + 1,
                MAX_BATCH_ENVELOPES,
                BATCH_MAX_BYTES,
            )
            .await
            .map_err(|error| error.to_string())?;
        let Some(last) = entries.last().map(|(seq, _)| *seq) else {
            return Ok(false);
        };
        let items: Vec<MailboxItem> = entries
            .into_iter()
            .filter_map(
                |(seq, bytes)| match MailboxItem::from_stored(bytes.to_vec()) {
                    Ok(item) => Some(item),
                    Err(error) => {
                        tracing::warn!(%user, seq, %error, "skipping an unreadable mailbox entry");
                        None
                    }
                },
            )
            .collect();
        let remote = Remote::of(&home).ok_or("the new home record names no valid relay")?;
        let request = FederationRequest::Handoff {
            home: Box::new(home),
            previous: Box::new(here),
            items: BoundedVec::new(items).map_err(|error| error.to_string())?,
        };
        let outcomes = match self.links.request(&remote, request).await {
            Ok(FederationResponse::Stored { outcomes }) => outcomes.into_vec(),
            Ok(_) => return Err("unexpected answer".into()),
            Err(error) => return Err(error.to_string()),
        };
        if let Some(SendOutcome::Rejected(answer)) = outcomes.iter().find(|outcome| {
            matches!(outcome, SendOutcome::Rejected(answer) if answer.code.is_transient()
                || answer.code == tidings_protocol::ErrorCode::WrongRelay
                || answer.code == tidings_protocol::ErrorCode::QuotaExceeded)
        }) {
            return Err(answer.to_string());
        }
        // Everything is stored at the new home (or refused for good); it may go from here.
        self.store
            .ack(device, last)
            .await
            .map_err(|error| error.to_string())?;
        Ok(true)
    }
}
