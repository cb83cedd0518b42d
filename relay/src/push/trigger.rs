//! The store writer's side of push: the per-device counts the writer bumps for committed
//! entries of devices that are not subscribed, shared with the dispatcher and the sessions.
//! It depends on nothing of the store, so the mailbox hub can call it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tidings_protocol::{DeviceId, push::PushSubscription};
use tokio::{sync::mpsc, time::Instant};

use super::kind;
use crate::metrics::PushMetrics;

/// Where one device's pushes stand. Held for every device with a subscription (so memory
/// is bounded by the devices registered here), behind one lock the writer takes briefly.
pub(super) struct DeviceState {
    pub(super) subscription: Arc<PushSubscription>,
    /// Message entries not yet counted in a push.
    pub(super) pending: u32,
    /// Whether the dispatcher was woken for it and has not taken its pending count yet
    /// (so the wake channel holds each device at most once).
    pub(super) queued: bool,
    /// A POST for it is under way.
    pub(super) in_flight: bool,
    /// When its last POST started.
    pub(super) last_sent: Option<Instant>,
    /// Failed tries of the push being retried (0: none).
    pub(super) attempt: u32,
    /// Not before this (a retry's backoff or `Retry-After`).
    pub(super) retry_at: Option<Instant>,
}

impl DeviceState {
    pub(super) fn new(subscription: Arc<PushSubscription>) -> Self {
        Self {
            subscription,
            pending: 0,
            queued: false,
            in_flight: false,
            last_sent: None,
            attempt: 0,
            retry_at: None,
        }
    }
}

/// What the writer-side trigger, the dispatcher and the sessions share.
pub(super) struct Shared {
    pub(super) devices: Mutex<HashMap<DeviceId, DeviceState>>,
    pub(super) wake: mpsc::UnboundedSender<DeviceId>,
    pub(super) metrics: PushMetrics,
}

impl Shared {
    /// Wakes the dispatcher for `device` unless it was woken and has not taken the count.
    pub(super) fn wake_for(&self, device: &DeviceId, state: &mut DeviceState) {
        if !state.queued {
            state.queued = true;
            // Fails only once the dispatcher stopped (shutdown).
            let _ = self.wake.send(*device);
        }
    }

    pub(super) fn devices(&self) -> MutexGuard<'_, HashMap<DeviceId, DeviceState>> {
        self.devices
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The store writer's side: counts committed entries of devices that are not subscribed.
#[derive(Clone)]
pub struct Trigger(Arc<Shared>);

impl Trigger {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self(shared)
    }

    /// Takes the device map for the entries of one commit (the dispatcher waits meanwhile,
    /// so it sees the commit's entries all at once).
    pub fn batch(&self) -> TriggerBatch<'_> {
        TriggerBatch {
            shared: &self.0,
            devices: self.0.devices(),
        }
    }
}

/// The device map, held while one commit's entries are counted.
pub struct TriggerBatch<'a> {
    shared: &'a Shared,
    devices: MutexGuard<'a, HashMap<DeviceId, DeviceState>>,
}

impl TriggerBatch<'_> {
    /// A committed mailbox entry for `device`, which has no subscribed session: one hash
    /// lookup if the device has no push subscription. Never blocks beyond the map's lock,
    /// never awaits, allocates nothing.
    pub fn on_entry(&mut self, device: &DeviceId, bytes: &[u8]) {
        let Some(state) = self.devices.get_mut(device) else {
            return;
        };
        if !kind::is_message(bytes) {
            return;
        }
        if state.pending > 0 {
            self.shared.metrics.coalesced(1);
        }
        state.pending = state.pending.saturating_add(1);
        self.shared.wake_for(device, state);
    }
}
