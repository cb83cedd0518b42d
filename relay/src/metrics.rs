//! Prometheus metrics of the relay, and the loopback HTTP endpoint serving them and
//! `/healthz`.

use std::{net::SocketAddr, sync::Arc};

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, text::encode},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tidings_protocol::Kind;
use tokio_util::sync::CancellationToken;

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

/// Who handed the relay an envelope it stored.
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

/// The relay's counters.
pub struct Metrics {
    registry: Registry,
    forward_batches: Family<BatchLabels, Counter>,
    envelopes_stored: Family<StoredLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tidings");
        let forward_batches = Family::<BatchLabels, Counter>::default();
        registry.register(
            "forward_batches",
            "Batches of envelopes forwarded to other relays",
            forward_batches.clone(),
        );
        let envelopes_stored = Family::<StoredLabels, Counter>::default();
        registry.register(
            "envelopes_stored",
            "Envelopes durably accepted, by kind and by who handed them over",
            envelopes_stored.clone(),
        );
        Self {
            registry,
            forward_batches,
            envelopes_stored,
        }
    }
}

impl Metrics {
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

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Binds the metrics endpoint; serving runs until `shutdown`.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let serving = async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "metrics endpoint accept failed");
                        continue;
                    }
                },
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&metrics, &request)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "metrics connection ended");
                }
            });
        }
    };
    Ok((bound, serving))
}

fn respond(metrics: &Metrics, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" => (StatusCode::OK, "ok\n".to_string(), "text/plain"),
        _ => (
            StatusCode::NOT_FOUND,
            "not found\n".to_string(),
            "text/plain",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
