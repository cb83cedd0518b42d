//! Web Push: waking devices that are not connected when messages wait for them.
//!
//! The store writer hands every committed mailbox entry of a device without a subscribed
//! session to [`Trigger::on_entry`] (through the [`crate::mailbox::Hub`]): one hash lookup
//! for a device without a push subscription; for one with, a header read (is it a message?)
//! and a counter bump, waking the [`dispatcher`] the first time. The dispatcher coalesces
//! (at most one push per device per interval), POSTs through bounded tasks ([`send`]),
//! retries, and drops subscriptions the push service calls gone. What a push carries is
//! only `{"tidings":"new","count":N}`, encrypted to the device.

mod dispatcher;
mod guard;
mod kind;
mod send;
mod vapid;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tidings_protocol::{DeviceId, push::PushSubscription};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use guard::{EndpointRefused, check_endpoint, is_public};
pub use vapid::{VAPID_KEY_FILE, VapidKey};

use crate::{config::PushConfig, metrics::PushMetrics, store::Store};

/// Why push could not start.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The HTTP client could not be built (no TLS roots).
    #[error("push HTTP client: {0}")]
    Client(String),
    /// The stored subscriptions could not be read.
    #[error("reading push subscriptions: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Where one device's pushes stand. Held for every device with a subscription (so memory
/// is bounded by the devices registered here), behind one lock the writer takes briefly.
struct DeviceState {
    subscription: Arc<PushSubscription>,
    /// Message entries not yet counted in a push.
    pending: u32,
    /// Whether the dispatcher was woken for it and has not taken its pending count yet
    /// (so the wake channel holds each device at most once).
    queued: bool,
    /// A POST for it is under way.
    in_flight: bool,
    /// When its last POST started.
    last_sent: Option<Instant>,
    /// Failed tries of the push being retried (0: none).
    attempt: u32,
    /// Not before this (a retry's backoff or `Retry-After`).
    retry_at: Option<Instant>,
}

impl DeviceState {
    fn new(subscription: Arc<PushSubscription>) -> Self {
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
struct Shared {
    devices: Mutex<HashMap<DeviceId, DeviceState>>,
    wake: mpsc::UnboundedSender<DeviceId>,
    metrics: PushMetrics,
}

impl Shared {
    fn devices(&self) -> MutexGuard<'_, HashMap<DeviceId, DeviceState>> {
        self.devices
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The store writer's side: counts committed entries of devices that are not subscribed.
#[derive(Clone)]
pub struct Trigger(Arc<Shared>);

impl Trigger {
    /// A committed mailbox entry for `device`, which has no subscribed session. Never
    /// blocks (a short lock, no await); allocates nothing.
    pub fn on_entry(&self, device: &DeviceId, bytes: &[u8]) {
        let mut devices = self.0.devices();
        let Some(state) = devices.get_mut(device) else {
            return;
        };
        if !kind::is_message(bytes) {
            return;
        }
        if state.pending > 0 {
            self.0.metrics.coalesced(1);
        }
        state.pending = state.pending.saturating_add(1);
        if !state.queued {
            state.queued = true;
            // Fails only once the dispatcher stopped (shutdown).
            let _ = self.0.wake.send(*device);
        }
    }
}

/// The sessions' side: the relay's VAPID key, subscriptions set and cleared, pushes
/// cancelled when a device comes online.
#[derive(Clone)]
pub struct Push {
    shared: Option<Arc<Shared>>,
    vapid_public: Vec<u8>,
    allow_private: bool,
}

impl Push {
    /// Push turned off: every request about it is answered `unavailable`.
    pub fn disabled() -> Self {
        Self {
            shared: None,
            vapid_public: Vec::new(),
            allow_private: false,
        }
    }

    /// Loads the stored subscriptions and starts the dispatcher on `tasks` until `stop`.
    /// Returns the handle and the trigger for the hub.
    pub async fn start(
        config: &PushConfig,
        vapid: VapidKey,
        store: Store,
        metrics: PushMetrics,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<(Self, Trigger), PushError> {
        let vapid = Arc::new(vapid);
        let vapid_public = vapid.public_key();
        let sender = send::Sender::new(config, vapid)
            .map_err(|error| PushError::Client(error.to_string()))?;
        let mut devices = HashMap::new();
        for (device, record) in store.push_subscriptions().await? {
            devices.insert(device, DeviceState::new(Arc::new(record.subscription)));
        }
        metrics.set_subscriptions(devices.len());
        let (wake, woken) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            devices: Mutex::new(devices),
            wake,
            metrics,
        });
        let dispatcher =
            dispatcher::Dispatcher::new(shared.clone(), Arc::new(sender), store, config, woken);
        tasks.spawn(dispatcher.run(stop));
        let push = Self {
            shared: Some(shared.clone()),
            vapid_public,
            allow_private: config.allow_private_endpoints,
        };
        Ok((push, Trigger(shared)))
    }

    /// Whether this relay sends pushes.
    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// The VAPID public key (65 bytes, uncompressed), empty if push is off.
    pub fn vapid_public_key(&self) -> Vec<u8> {
        self.vapid_public.clone()
    }

    /// Whether endpoints may be http:// or private (`push.allow_private_endpoints`).
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The device subscribed: what it was to be woken for it receives now.
    pub fn cancel(&self, device: &DeviceId) {
        if let Some(shared) = &self.shared
            && let Some(state) = shared.devices().get_mut(device)
        {
            state.pending = 0;
        }
    }

    /// The device's subscription was stored (`Some`) or cleared (`None`).
    pub fn set(&self, device: DeviceId, subscription: Option<PushSubscription>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut devices = shared.devices();
        match subscription {
            Some(subscription) => {
                let subscription = Arc::new(subscription);
                match devices.get_mut(&device) {
                    Some(state) => {
                        state.subscription = subscription;
                        state.attempt = 0;
                        state.retry_at = None;
                    }
                    None => {
                        devices.insert(device, DeviceState::new(subscription));
                    }
                }
            }
            None => {
                devices.remove(&device);
            }
        }
        shared.metrics.set_subscriptions(devices.len());
    }

    /// Forgets the subscriptions of revoked devices (the store deleted them in the same
    /// commit as the revocation).
    pub fn forget(&self, revoked: &[DeviceId]) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut devices = shared.devices();
        for device in revoked {
            devices.remove(device);
        }
        shared.metrics.set_subscriptions(devices.len());
    }
}
