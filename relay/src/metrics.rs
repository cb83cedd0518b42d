//! Prometheus metrics of the relay, and the loopback HTTP endpoint serving them and
//! `/healthz`.
//!
//! Every series lives here as a typed method; the rest of the relay calls one method per
//! event. The store writer has its own handle ([`StoreMetrics`]), created with the writer and
//! registered here. libp2p's own metrics (`libp2p_*`) share the registry.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use libp2p::metrics::Recorder;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tidings_protocol::{ErrorCode, Kind, client::SendOutcome};

pub use crate::limit_metrics::{LimitMetrics, Refusal};

mod blobs;
mod devices;
mod dht;
mod endpoint;
mod limits;
mod push;
mod store;

pub use blobs::{BlobMetrics, Direction, TransferOutcome};
pub use devices::{DeviceListMetrics, DeviceListVerdict};
pub use dht::DhtStats;
use dht::HomeRecords;
pub use endpoint::serve;
use limits::{ClaimLabels, StreamLabels};
pub use limits::{ClaimRefusal, StreamKind, StreamLimit};
pub use push::{PushFailure, PushMetrics};
pub use store::{StoreMetrics, WriterRunning};

/// What kind of envelopes a forward batch carried.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum BatchKind {
    /// Only direct envelopes.
    Direct,
    /// At least one group envelope.
    Group,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabels {
    kind: BatchKind,
}

/// Who handed the relay an envelope (stored or refused).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum StoredFrom {
    /// One of its own users' devices.
    Client,
    /// Another relay.
    Federation,
}

/// An envelope kind, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
enum KindLabel {
    Message,
    Receipt,
    Typing,
    KeyShare,
    GroupControl,
    Other,
}

impl From<Kind> for KindLabel {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Message => KindLabel::Message,
            Kind::Receipt => KindLabel::Receipt,
            Kind::Typing => KindLabel::Typing,
            Kind::KeyShare => KindLabel::KeyShare,
            Kind::GroupControl => KindLabel::GroupControl,
            Kind::Other => KindLabel::Other,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredLabels {
    kind: KindLabel,
    from: StoredFrom,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FromLabels {
    from: StoredFrom,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    /// The error code's wire name.
    reason: &'static str,
    from: StoredFrom,
}

/// How far an envelope got towards a device.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum DeliveryStage {
    /// Written to a subscribed device's stream.
    Pushed,
    /// Acknowledged by the device (and so deleted from its mailbox).
    Acked,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveredLabels {
    stage: DeliveryStage,
}

/// Decrements a gauge when dropped: one live connection, session or stream.
#[derive(Debug)]
pub struct Live(Gauge);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The relay's metrics.
pub struct Metrics {
    registry: Registry,
    libp2p: libp2p::metrics::Metrics,
    forward_batches: Family<BatchLabels, Counter>,
    forward_failures: Counter,
    envelopes_stored: Family<StoredLabels, Counter>,
    envelopes_rejected: Family<RejectedLabels, Counter>,
    envelopes_duplicate: Family<FromLabels, Counter>,
    envelopes_delivered: Family<DeliveredLabels, Counter>,
    connections: Gauge,
    sessions: Gauge,
    federation_streams: Gauge,
    streams_refused: Family<StreamLabels, Counter>,
    stream_timeouts: Family<StreamLabels, Counter>,
    connections_refused: Counter,
    warm_links: Gauge,
    claims_refused: Family<ClaimLabels, Counter>,
    one_time_keys_withheld: Counter,
    store: StoreMetrics,
    /// What the storage and registration limits refused, and the disk floor.
    pub limits: LimitMetrics,
    /// What became of published device lists.
    pub device_lists: DeviceListMetrics,
    /// Media blob transfers and storage.
    pub blobs: BlobMetrics,
    /// Web Push: pushes sent and failed, subscriptions.
    pub push: PushMetrics,
    network_running: AtomicBool,
    /// A listener closed after start: some configured address is not served any more.
    listener_lost: AtomicBool,
    dht: Arc<OnceLock<Arc<DhtStats>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(StoreMetrics::default())
    }
}

impl Metrics {
    /// Metrics of a relay whose store writer reports through `store`.
    pub fn new(store: StoreMetrics) -> Self {
        let mut registry = Registry::default();
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let tidings = registry.sub_registry_with_prefix("tidings");
        let forward_batches = Family::<BatchLabels, Counter>::default();
        tidings.register(
            "forward_batches",
            "Batches of envelopes forwarded to other relays",
            forward_batches.clone(),
        );
        let forward_failures = Counter::default();
        tidings.register(
            "forward_failures",
            "Forward batches that failed (the relay unreachable or the link broken): retried",
            forward_failures.clone(),
        );
        let envelopes_stored = Family::<StoredLabels, Counter>::default();
        tidings.register(
            "envelopes_stored",
            "Envelopes durably accepted, by kind and by who handed them over",
            envelopes_stored.clone(),
        );
        let envelopes_rejected = Family::<RejectedLabels, Counter>::default();
        tidings.register(
            "envelopes_rejected",
            "Envelopes refused, by error code and by who handed them over (one per recipient \
             for envelopes from other relays)",
            envelopes_rejected.clone(),
        );
        let envelopes_duplicate = Family::<FromLabels, Counter>::default();
        tidings.register(
            "envelopes_duplicate",
            "Envelopes handed over again (replayed ids), answered Duplicate and not stored again",
            envelopes_duplicate.clone(),
        );
        tidings.register(
            "envelopes_forwarded",
            "Outbox entries (one per envelope and recipient) another relay durably took",
            store.forwarded.clone(),
        );
        let envelopes_delivered = Family::<DeliveredLabels, Counter>::default();
        tidings.register(
            "envelopes_delivered",
            "Mailbox entries pushed to devices, and acknowledged by them",
            envelopes_delivered.clone(),
        );
        tidings.register(
            "outbox_envelopes",
            "Envelopes waiting in the outbox for other relays (one per recipient)",
            store.outbox_envelopes.clone(),
        );
        tidings.register(
            "mailbox_envelopes",
            "Entries waiting in all mailboxes for their devices",
            store.mailbox_envelopes.clone(),
        );
        tidings.register(
            "store_commit_seconds",
            "Time of each durable store commit (one commit holds many operations)",
            store.commit_seconds.clone(),
        );
        tidings.register(
            "store_commit_failures",
            "Store commits that failed (every operation in them was answered with an error)",
            store.commit_failures.clone(),
        );
        let connections = Gauge::default();
        tidings.register(
            "connections",
            "Established libp2p connections (devices and relays)",
            connections.clone(),
        );
        let sessions = Gauge::default();
        tidings.register(
            "sessions",
            "Device streams being served (client protocol)",
            sessions.clone(),
        );
        let federation_streams = Gauge::default();
        tidings.register(
            "federation_streams",
            "Streams from other relays being served (federation protocol)",
            federation_streams.clone(),
        );
        let streams_refused = Family::<StreamLabels, Counter>::default();
        tidings.register(
            "streams_refused",
            "New streams refused because their peer held its share, every slot was taken, or \
             the protocol's accept queue was full (backlog; the stream is reset)",
            streams_refused.clone(),
        );
        let stream_timeouts = Family::<StreamLabels, Counter>::default();
        tidings.register(
            "stream_timeouts",
            "Streams closed because no frame came in time (idle) or a started frame did not \
             arrive whole in time (slow_frame)",
            stream_timeouts.clone(),
        );
        let connections_refused = Counter::default();
        tidings.register(
            "connections_refused",
            "Incoming connections refused by the connection limits (per peer, pending, total)",
            connections_refused.clone(),
        );
        let warm_links = Gauge::default();
        tidings.register(
            "warm_relay_links",
            "Connections to other relays kept open while idle",
            warm_links.clone(),
        );
        let claims_refused = Family::<ClaimLabels, Counter>::default();
        tidings.register(
            "claims_refused",
            "Key claims from other relays refused (one per user asked for): requester not \
             homed at the asking relay, requester unknown, or claiming too fast",
            claims_refused.clone(),
        );
        let one_time_keys_withheld = Counter::default();
        tidings.register(
            "one_time_keys_withheld",
            "Claims answered with the fallback key because the user's hourly one-time key \
             budget was spent",
            one_time_keys_withheld.clone(),
        );
        let limits = LimitMetrics::register(tidings);
        let device_lists = DeviceListMetrics::register(tidings);
        let blobs = BlobMetrics::register(tidings);
        let push = PushMetrics::register(tidings);
        let home_records = HomeRecords::default();
        let dht = home_records.0.clone();
        tidings.register_collector(Box::new(home_records));
        Self {
            registry,
            libp2p,
            forward_batches,
            forward_failures,
            envelopes_stored,
            envelopes_rejected,
            envelopes_duplicate,
            envelopes_delivered,
            connections,
            sessions,
            federation_streams,
            streams_refused,
            stream_timeouts,
            connections_refused,
            warm_links,
            claims_refused,
            one_time_keys_withheld,
            store,
            limits,
            device_lists,
            blobs,
            push,
            network_running: AtomicBool::new(false),
            listener_lost: AtomicBool::new(false),
            dht,
        }
    }

    /// Counts one forward batch.
    pub fn forward_batch(&self, group: bool) {
        let kind = if group {
            BatchKind::Group
        } else {
            BatchKind::Direct
        };
        self.forward_batches
            .get_or_create(&BatchLabels { kind })
            .inc();
    }

    /// Counts a forward batch that failed (and will be retried).
    pub fn forward_failed(&self) {
        self.forward_failures.inc();
    }

    /// Forward batches that failed so far.
    pub fn forward_failures(&self) -> u64 {
        self.forward_failures.get()
    }

    /// Forward batches so far, of one kind.
    pub fn forward_batches(&self, kind: BatchKind) -> u64 {
        self.forward_batches
            .get_or_create(&BatchLabels { kind })
            .get()
    }

    /// Counts an envelope durably accepted.
    pub fn envelope_stored(&self, kind: Kind, from: StoredFrom) {
        let labels = StoredLabels {
            kind: kind.into(),
            from,
        };
        self.envelopes_stored.get_or_create(&labels).inc();
    }

    /// Envelopes of `kind` accepted so far, from devices and relays together.
    pub fn envelopes_stored(&self, kind: Kind) -> u64 {
        [StoredFrom::Client, StoredFrom::Federation]
            .into_iter()
            .map(|from| {
                let labels = StoredLabels {
                    kind: kind.into(),
                    from,
                };
                self.envelopes_stored.get_or_create(&labels).get()
            })
            .sum()
    }

    /// Counts the refusals and the duplicates among the answers to one request.
    pub(crate) fn envelopes_answered(&self, outcomes: &[SendOutcome], from: StoredFrom) {
        for outcome in outcomes {
            match outcome {
                SendOutcome::Rejected(answer) => {
                    let labels = RejectedLabels {
                        reason: answer.code.as_str(),
                        from,
                    };
                    self.envelopes_rejected.get_or_create(&labels).inc();
                }
                SendOutcome::Duplicate => {
                    self.envelopes_duplicate
                        .get_or_create(&FromLabels { from })
                        .inc();
                }
                SendOutcome::Accepted => {}
            }
        }
    }

    /// Envelopes answered Duplicate so far, from devices and relays together.
    pub fn envelopes_duplicate(&self) -> u64 {
        [StoredFrom::Client, StoredFrom::Federation]
            .into_iter()
            .map(|from| {
                self.envelopes_duplicate
                    .get_or_create(&FromLabels { from })
                    .get()
            })
            .sum()
    }

    /// Envelopes refused with `code` so far, from devices and relays together.
    pub fn envelopes_rejected(&self, code: ErrorCode) -> u64 {
        [StoredFrom::Client, StoredFrom::Federation]
            .into_iter()
            .map(|from| {
                let labels = RejectedLabels {
                    reason: code.as_str(),
                    from,
                };
                self.envelopes_rejected.get_or_create(&labels).get()
            })
            .sum()
    }

    /// Counts mailbox entries pushed to a device, or acknowledged by it.
    pub(crate) fn envelopes_delivered(&self, stage: DeliveryStage, entries: usize) {
        self.envelopes_delivered
            .get_or_create(&DeliveredLabels { stage })
            .inc_by(entries as u64);
    }

    /// Mailbox entries that reached `stage` so far.
    pub fn delivered(&self, stage: DeliveryStage) -> u64 {
        self.envelopes_delivered
            .get_or_create(&DeliveredLabels { stage })
            .get()
    }

    /// Counts a device session until the guard is dropped.
    pub(crate) fn session_opened(&self) -> Live {
        self.sessions.inc();
        Live(self.sessions.clone())
    }

    /// Device sessions being served now.
    pub fn sessions(&self) -> i64 {
        self.sessions.get()
    }

    /// Counts a federation stream until the guard is dropped.
    pub(crate) fn federation_stream_opened(&self) -> Live {
        self.federation_streams.inc();
        Live(self.federation_streams.clone())
    }

    /// Counts a new stream refused for `reason` (a peer or total limit).
    pub(crate) fn stream_refused(&self, protocol: StreamKind, reason: StreamLimit) {
        self.streams_refused
            .get_or_create(&StreamLabels { protocol, reason })
            .inc();
    }

    /// Streams of `protocol` refused so far, for any reason.
    pub fn streams_refused(&self, protocol: StreamKind) -> u64 {
        [
            StreamLimit::PeerLimit,
            StreamLimit::Full,
            StreamLimit::Backlog,
        ]
        .into_iter()
        .map(|reason| {
            self.streams_refused
                .get_or_create(&StreamLabels { protocol, reason })
                .get()
        })
        .sum()
    }

    /// Counts a stream closed because a frame did not come (`Idle`) or did not finish
    /// (`SlowFrame`) in time.
    pub(crate) fn stream_timed_out(&self, protocol: StreamKind, reason: StreamLimit) {
        self.stream_timeouts
            .get_or_create(&StreamLabels { protocol, reason })
            .inc();
    }

    /// Counts an incoming connection refused by the connection limits.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// How many links to other relays are kept open while idle.
    pub(crate) fn set_warm_links(&self, links: usize) {
        self.warm_links
            .set(i64::try_from(links).unwrap_or(i64::MAX));
    }

    /// Counts a key claim (one user asked for) refused to another relay.
    pub(crate) fn claim_refused(&self, reason: ClaimRefusal) {
        self.claims_refused
            .get_or_create(&ClaimLabels { reason })
            .inc();
    }

    /// Counts a claim answered with the fallback key to spare the one-time keys.
    pub(crate) fn one_time_key_withheld(&self) {
        self.one_time_keys_withheld.inc();
    }

    /// Records what the network event loop saw: libp2p's own metrics, and connections.
    pub(crate) fn swarm_event<E>(&self, event: &libp2p::swarm::SwarmEvent<E>) {
        self.libp2p.record(event);
        match event {
            libp2p::swarm::SwarmEvent::ConnectionEstablished { .. } => {
                self.connections.inc();
            }
            libp2p::swarm::SwarmEvent::ConnectionClosed { .. } => {
                self.connections.dec();
            }
            _ => {}
        }
    }

    /// Records a protocol event (Kademlia, identify, ping) in libp2p's metrics.
    pub(crate) fn libp2p_event<E>(&self, event: &E)
    where
        libp2p::metrics::Metrics: Recorder<E>,
    {
        self.libp2p.record(event);
    }

    /// Called by the network event loop as it starts and stops (for `/healthz`), with the
    /// DHT counters it keeps.
    pub(crate) fn network_running(&self, running: bool, dht: &Arc<DhtStats>) {
        let _ = self.dht.set(dht.clone());
        self.network_running.store(running, Ordering::Relaxed);
    }

    /// A listener closed: `/healthz` reports it from now on.
    pub(crate) fn listener_closed(&self) {
        self.listener_lost.store(true, Ordering::Relaxed);
    }

    /// Entries waiting in the outbox for other relays.
    pub fn outbox_entries(&self) -> i64 {
        self.store.outbox_envelopes.get()
    }

    /// Whether the relay is serving: its store writer and network loop run and the last
    /// commit reached the disk. The error says what is wrong.
    pub fn health(&self) -> Result<(), &'static str> {
        if !self.store.writer_running.load(Ordering::Relaxed) {
            return Err("the store writer is not running");
        }
        if self.store.last_commit_failed.load(Ordering::Relaxed) {
            return Err("the last store commit failed");
        }
        if !self.network_running.load(Ordering::Relaxed) {
            return Err("the network event loop is not running");
        }
        if self.listener_lost.load(Ordering::Relaxed) {
            return Err("a listener closed: a configured listen address is not served");
        }
        if self.limits.disk_low() {
            return Err("free disk space is below the floor (limits.min_free_disk_bytes)");
        }
        Ok(())
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_listener_makes_the_relay_unhealthy() {
        let metrics = Metrics::default();
        metrics.store.writer_running.store(true, Ordering::Relaxed);
        metrics.network_running(true, &Arc::new(DhtStats::default()));
        assert_eq!(metrics.health(), Ok(()));
        metrics.listener_closed();
        assert!(metrics.health().unwrap_err().contains("listener closed"));
    }
}
