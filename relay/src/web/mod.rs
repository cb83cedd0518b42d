//! The browser page over HTTP: static files from one directory, `/tidings.json` naming the
//! relay's addresses, and a strict Content-Security-Policy on every answer.

mod path;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Bytes,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use libp2p::{Multiaddr, multiaddr::Protocol};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::network::NetworkHandle;
use path::PathRefusal;

/// Largest request head (request line and headers) read; beyond it the request is refused.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// Largest file served (a release wasm bundle is a few MB).
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Most HTTP connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the page server needs to answer.
pub(crate) struct Site {
    /// The page directory, canonical (symlinks resolved) so containment checks hold.
    root: PathBuf,
    /// Configured announce addresses; empty: the current listen addresses.
    announce: Vec<Multiaddr>,
    network: NetworkHandle,
    name: String,
}

impl Site {
    /// A site serving `dir` for the relay behind `network`.
    pub(crate) fn new(
        dir: &std::path::Path,
        announce: Vec<Multiaddr>,
        network: NetworkHandle,
        name: String,
    ) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(dir)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self {
            root,
            announce,
            network,
            name,
        })
    }

    /// The relay's dial addresses, each ending in `/p2p/<peer id>`.
    fn addresses(&self) -> Vec<Multiaddr> {
        let peer = self.network.peer_id();
        let bare = if self.announce.is_empty() {
            self.network.listen_addrs()
        } else {
            self.announce.clone()
        };
        bare.into_iter()
            .map(|address| match address.iter().last() {
                Some(Protocol::P2p(_)) => address,
                _ => address.with(Protocol::P2p(peer)),
            })
            .collect()
    }

    /// `connect-src` sources for the relay's WebSocket addresses (`ws://host:port`,
    /// `wss://host:port`).
    fn websocket_sources(&self) -> Vec<String> {
        let mut sources: Vec<String> = self.addresses().iter().filter_map(ws_origin).collect();
        sources.sort();
        sources.dedup();
        sources
    }

    /// The Content-Security-Policy of every answer: only this origin, wasm allowed to
    /// compile, connections only here and to the relay's WebSocket addresses.
    fn content_security_policy(&self) -> String {
        let mut connect = String::from("'self'");
        for source in self.websocket_sources() {
            connect.push(' ');
            connect.push_str(&source);
        }
        format!(
            "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; \
             connect-src {connect}; img-src 'self' blob: data:; media-src 'self' blob:; \
             style-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        )
    }
}

/// `ws://host:port` or `wss://host:port` for a WebSocket multiaddr (`None` for others, and
/// for host names with characters a CSP source may not hold).
fn ws_origin(address: &Multiaddr) -> Option<String> {
    let mut host = None;
    let mut port = None;
    let mut tls = false;
    let mut scheme = None;
    for protocol in address.iter() {
        match protocol {
            Protocol::Ip4(ip) => host = Some(ip.to_string()),
            Protocol::Ip6(ip) => host = Some(format!("[{ip}]")),
            Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => {
                host = Some(name.to_string())
            }
            Protocol::Tcp(number) => port = Some(number),
            Protocol::Tls => tls = true,
            Protocol::Ws(_) => scheme = Some(if tls { "wss" } else { "ws" }),
            Protocol::Wss(_) => scheme = Some("wss"),
            _ => {}
        }
    }
    let host = host?;
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if !host.chars().all(safe) {
        return None;
    }
    Some(format!("{}://{host}:{}", scheme?, port?))
}

/// The content type of a file, by extension.
fn content_type(file: &std::path::Path) -> &'static str {
    match file.extension().and_then(|ext| ext.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// Starts serving the browser page if `[web]` asks for it (on `background`, until
/// `shutdown`): where it is served.
pub(crate) async fn start(
    config: &crate::config::RelayConfig,
    data_dir: &std::path::Path,
    network: &NetworkHandle,
    shutdown: CancellationToken,
    background: &tokio_util::task::TaskTracker,
) -> Result<Option<SocketAddr>, crate::RelayError> {
    let Some(address) = config.web.listen_addr()? else {
        return Ok(None);
    };
    let dir = config.web.dir_in(data_dir);
    let io = |what: String| {
        move |source| crate::RelayError::Io {
            path: what.clone(),
            source,
        }
    };
    let announce = config
        .announce
        .iter()
        .filter_map(|address| address.parse().ok())
        .collect();
    let site = Site::new(&dir, announce, network.clone(), config.name.clone())
        .map_err(io(format!("web.dir {}", dir.display())))?;
    let (bound, serving) = serve(address, Arc::new(site), shutdown)
        .await
        .map_err(io(format!("web.listen {address}")))?;
    background.spawn(serving);
    tracing::info!(address = %bound, dir = %dir.display(), "serving the browser page");
    Ok(Some(bound))
}

/// Binds the page server; serving runs until `shutdown`.
pub(crate) async fn serve(
    address: SocketAddr,
    site: Arc<Site>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let serving = async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "web: accept failed");
                        continue;
                    }
                },
            };
            let site = site.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let site = site.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&site, &request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    result = connection => if let Err(error) = result {
                        tracing::debug!(%error, "web connection ended");
                    },
                }
            });
        }
    };
    Ok((bound, serving))
}

/// The answer to one request.
async fn respond(site: &Site, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        let mut response = plain(site, StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let (status, body, kind) = match request.uri().path() {
        "/tidings.json" => (
            StatusCode::OK,
            Bytes::from(tidings_json(site)),
            "application/json",
        ),
        requested => match file(site, requested).await {
            Ok((bytes, kind)) => (StatusCode::OK, Bytes::from(bytes), kind),
            Err(refusal) => {
                let status = match refusal {
                    PathRefusal::TooLong => StatusCode::URI_TOO_LONG,
                    PathRefusal::Malformed => StatusCode::BAD_REQUEST,
                    PathRefusal::NotFound => StatusCode::NOT_FOUND,
                };
                return plain(site, status, "not found\n");
            }
        },
    };
    let length = body.len();
    let mut response = Response::new(Full::new(if head { Bytes::new() } else { body }));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(site, response)
}

/// A file of the page and its content type.
async fn file(site: &Site, requested: &str) -> Result<(Vec<u8>, &'static str), PathRefusal> {
    let relative = path::relative_file(requested)?;
    let real = path::resolve(&site.root, &relative).await?;
    let metadata = tokio::fs::metadata(&real)
        .await
        .map_err(|_| PathRefusal::NotFound)?;
    if metadata.len() > MAX_FILE_BYTES {
        tracing::warn!(path = %real.display(), "web: file larger than MAX_FILE_BYTES not served");
        return Err(PathRefusal::NotFound);
    }
    let bytes = tokio::fs::read(&real)
        .await
        .map_err(|_| PathRefusal::NotFound)?;
    Ok((bytes, content_type(&real)))
}

/// `/tidings.json`: the relay's name, peer id and dial addresses.
fn tidings_json(site: &Site) -> Vec<u8> {
    let addresses: Vec<String> = site.addresses().iter().map(|a| a.to_string()).collect();
    let value = serde_json::json!({
        "name": site.name,
        "peer_id": site.network.peer_id().to_string(),
        "addresses": addresses,
    });
    let mut text = value.to_string();
    text.push('\n');
    text.into_bytes()
}

/// A short text answer with the security headers.
fn plain(site: &Site, status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(site, response)
}

/// Adds the Content-Security-Policy and the other hardening headers.
fn secure(site: &Site, mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&site.content_security_policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_addresses_become_csp_origins() {
        let origin = |text: &str| ws_origin(&text.parse().unwrap());
        assert_eq!(
            origin("/ip4/127.0.0.1/tcp/4718/ws").as_deref(),
            Some("ws://127.0.0.1:4718")
        );
        assert_eq!(
            origin("/dns4/relay.example/tcp/443/tls/ws").as_deref(),
            Some("wss://relay.example:443")
        );
        assert_eq!(
            origin("/ip6/::1/tcp/443/wss").as_deref(),
            Some("wss://[::1]:443")
        );
        assert_eq!(origin("/ip4/127.0.0.1/tcp/4717"), None);
        assert_eq!(origin("/dns4/a;b/tcp/1/ws"), None);
    }
}
