//! The push service of the scenario: a Web Push receiver on loopback (one endpoint path per
//! device) that decrypts each push with the device's keys (RFC 8291, web-push-native),
//! reads the notice, looks for anything it must not carry, and rings the device's doorbell.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use tidings_protocol::push::{PushNotice, PushSubscription};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use web_push_native::{
    Auth,
    p256::{SecretKey, elliptic_curve::sec1::ToEncodedPoint},
};

use super::{now_ms, waker::Doorbell};

/// Largest push body read, in bytes (RFC 8030 push services take at most 4096).
const MAX_PUSH_BODY_BYTES: usize = 4096;

/// Most connections served at once (relays keep a few each).
const MAX_CONNECTIONS: usize = 256;

/// Most pushes whose arrival is kept (further ones are still checked and counted).
const MAX_PUSHES_LOGGED: usize = 100_000;

/// Most problems kept as text for the log.
const MAX_PROBLEMS_KEPT: usize = 20;

/// Path of device `index`'s endpoint.
fn endpoint_path(index: usize) -> String {
    format!("/push/{index}")
}

/// A device's Web Push keys: the P-256 secret whose public half is its `p256dh`, and its
/// authentication secret.
pub struct DeviceKeys {
    secret: SecretKey,
    auth: Auth,
}

impl DeviceKeys {
    /// Fresh random keys.
    pub fn generate() -> Self {
        let secret = loop {
            // A random scalar is below the group order but for a 2^-32 chance: draw again.
            if let Ok(secret) = SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break secret;
            }
        };
        Self {
            secret,
            auth: Auth::clone_from_slice(&rand::random::<[u8; 16]>()),
        }
    }

    /// The subscription a device with these keys registers, pushed to `endpoint`.
    pub fn subscription(&self, endpoint: String) -> PushSubscription {
        PushSubscription {
            endpoint,
            p256dh: self
                .secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            auth: self.auth.to_vec(),
        }
    }
}

/// What a push must never carry: each with a label for the log.
#[derive(Debug, Default)]
pub struct Secrets {
    items: Vec<(String, Vec<u8>)>,
}

impl Secrets {
    /// Adds `bytes` (labelled `what`) to look for.
    pub fn add(&mut self, what: String, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.items.push((what, bytes));
        }
    }

    /// The label of the first secret `body` contains.
    fn found_in(&self, body: &[u8]) -> Option<&str> {
        self.items
            .iter()
            .find(|(_, secret)| {
                secret.len() <= body.len() && body.windows(secret.len()).any(|w| w == secret)
            })
            .map(|(what, _)| what.as_str())
    }
}

/// One push received.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The device it was for.
    pub device: usize,
    /// When it arrived (ms since the epoch).
    pub arrived_ms: u64,
    /// The count its notice gave.
    pub count: u32,
}

/// What the receiver saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Pushes that decrypted to a notice (kept up to [`MAX_PUSHES_LOGGED`]).
    pub arrivals: Vec<Arrival>,
    /// Pushes that decrypted to a notice, all of them.
    pub pushes: usize,
    /// Pushes whose body, raw or decrypted, held a message's text or a user's id, device id
    /// or name.
    pub leaked: usize,
    /// Requests that were no valid push: not a POST to a device's path, no `aes128gcm`
    /// encoding, no `TTL`, no VAPID authorization, too large, not decrypting, or not a
    /// Tidings notice.
    pub bad: usize,
    /// Some of the problems, for the log.
    pub problems: Vec<String>,
}

impl Seen {
    /// Pushes that came sooner than `interval` (less `slack`) after the previous push to
    /// the same device: the relay promises at most one per device per interval.
    pub fn too_soon(&self, interval: Duration, slack: Duration) -> usize {
        let least = interval.saturating_sub(slack).as_millis() as u64;
        let mut last: HashMap<usize, u64> = HashMap::new();
        let mut sooner = 0;
        for arrival in &self.arrivals {
            if let Some(previous) = last.insert(arrival.device, arrival.arrived_ms)
                && arrival.arrived_ms.saturating_sub(previous) < least
            {
                sooner += 1;
            }
        }
        sooner
    }
}

impl Seen {
    fn problem(&mut self, text: String) {
        tracing::error!("push receiver: {text}");
        if self.problems.len() < MAX_PROBLEMS_KEPT {
            self.problems.push(text);
        }
    }
}

/// Everything a request handler reads.
struct Shared {
    keys: Vec<DeviceKeys>,
    doorbells: Vec<Arc<Doorbell>>,
    secrets: Secrets,
    seen: Mutex<Seen>,
}

/// The running receiver.
pub struct Receiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    serving: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Binds 127.0.0.1 and serves one endpoint per device of `keys`; pushes ring
    /// `doorbells` (one per device) and are searched for `secrets`.
    pub async fn start(
        keys: Vec<DeviceKeys>,
        doorbells: Vec<Arc<Doorbell>>,
        secrets: Secrets,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(keys.len() == doorbells.len(), "one doorbell per device");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the push receiver")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            keys,
            doorbells,
            secrets,
            seen: Mutex::new(Seen::default()),
        });
        let stop = CancellationToken::new();
        let serving = tokio::spawn(serve(listener, shared.clone(), stop.clone()));
        Ok(Self {
            address,
            shared,
            stop,
            serving,
        })
    }

    /// The subscription device `index` registers.
    pub fn subscription(&self, index: usize) -> Option<PushSubscription> {
        let keys = self.shared.keys.get(index)?;
        let url = format!("http://{}{}", self.address, endpoint_path(index));
        Some(keys.subscription(url))
    }

    /// When the last push arrived (ms since the epoch), if any did.
    pub fn last_arrival_ms(&self) -> Option<u64> {
        let seen = self.shared.seen.lock().ok()?;
        seen.arrivals.last().map(|arrival| arrival.arrived_ms)
    }

    /// Stops serving; returns what it saw.
    pub async fn stop(self) -> Seen {
        let Receiver {
            shared,
            stop,
            serving,
            ..
        } = self;
        stop.cancel();
        let _ = serving.await;
        let seen = shared.seen.lock().map(|seen| seen.clone());
        seen.unwrap_or_default()
    }
}

/// Accepts connections until `stop`, each served on its own task (at most
/// [`MAX_CONNECTIONS`]); the open ones are dropped at `stop`.
async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "push receiver accept failed");
                    continue;
                }
            },
        };
        // Reap finished connections so the set stays as small as the open ones.
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(receive(&shared, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "push receiver connection ended");
            }
        });
    }
}

/// Handles one request: a valid push is answered 201 Created (RFC 8030 section 5).
async fn receive(
    shared: &Shared,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    match take(shared, request).await {
        Ok(()) => respond(StatusCode::CREATED),
        Err((status, problem)) => {
            if let Ok(mut seen) = shared.seen.lock() {
                seen.bad += 1;
                seen.problem(problem);
            }
            respond(status)
        }
    }
}

fn respond(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Checks, decrypts and records one push; on refusal, the status and what was wrong.
async fn take(
    shared: &Shared,
    request: Request<hyper::body::Incoming>,
) -> Result<(), (StatusCode, String)> {
    let refuse = |status, text: &str| Err((status, text.to_string()));
    if request.method() != hyper::Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "a request that is not a POST",
        );
    }
    let device = request
        .uri()
        .path()
        .strip_prefix("/push/")
        .and_then(|index| index.parse::<usize>().ok())
        .filter(|index| *index < shared.keys.len());
    let Some(device) = device else {
        return refuse(StatusCode::NOT_FOUND, "a POST to no device's endpoint");
    };
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if !header("content-encoding").eq_ignore_ascii_case("aes128gcm") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a push not encoded aes128gcm",
        );
    }
    if header("ttl").parse::<u64>().is_err() {
        return refuse(StatusCode::BAD_REQUEST, "a push without a TTL header");
    }
    let authorization = header("authorization");
    let vapid = authorization.strip_prefix("vapid ").unwrap_or_default();
    if !(vapid.contains("t=") && vapid.contains("k=")) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "a push without VAPID authorization",
        );
    }
    let body = match Limited::new(request.into_body(), MAX_PUSH_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "a push body too large"),
    };
    let arrived_ms = now_ms();
    let keys = &shared.keys[device];
    let plain =
        web_push_native::decrypt(body.to_vec(), &keys.secret, &keys.auth).map_err(|error| {
            (
                StatusCode::BAD_REQUEST,
                format!("a push that does not decrypt: {error}"),
            )
        })?;
    let leak = shared
        .secrets
        .found_in(&body)
        .map(|what| format!("{what} in a raw push body"))
        .or_else(|| {
            shared
                .secrets
                .found_in(&plain)
                .map(|what| format!("{what} in a decrypted push"))
        });
    let notice = PushNotice::from_json(&plain);
    // Anything beside the notice's own fields is content the push must not carry.
    let leak = leak.or_else(|| {
        notice
            .is_some_and(|notice| notice.to_json() != plain)
            .then(|| "more than the notice in a decrypted push".to_string())
    });
    if let Ok(mut seen) = shared.seen.lock() {
        if let Some(leak) = leak {
            seen.leaked += 1;
            seen.problem(format!("push to device {device} leaked {leak}"));
        }
        if let Some(notice) = notice {
            seen.pushes += 1;
            if seen.arrivals.len() < MAX_PUSHES_LOGGED {
                seen.arrivals.push(Arrival {
                    device,
                    arrived_ms,
                    count: notice.count,
                });
            }
        }
    }
    if notice.is_none() {
        return refuse(StatusCode::BAD_REQUEST, "a push that is no Tidings notice");
    }
    shared.doorbells[device].ring(arrived_ms);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_device_encrypts_to_decrypts_with_its_keys_only() {
        let keys = DeviceKeys::generate();
        let subscription = keys.subscription("http://127.0.0.1:1/push/0".into());
        subscription.validate().unwrap();
        let public =
            web_push_native::p256::PublicKey::from_sec1_bytes(&subscription.p256dh).unwrap();
        let auth = Auth::clone_from_slice(&subscription.auth);
        let notice = PushNotice::new_messages(2).to_json();
        let sealed = web_push_native::encrypt(notice.clone(), &public, &auth).unwrap();
        let opened = web_push_native::decrypt(sealed.clone(), &keys.secret, &keys.auth).unwrap();
        assert_eq!(opened, notice);
        let other = DeviceKeys::generate();
        assert!(web_push_native::decrypt(sealed, &other.secret, &other.auth).is_err());
    }

    /// POSTs `body` to `path` of `address` over a real socket; returns the status code.
    async fn post(address: SocketAddr, path: &str, headers: &str, body: &[u8]) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {address}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.split(' ').nth(1).unwrap().parse().unwrap()
    }

    const PUSH_HEADERS: &str =
        "content-encoding: aes128gcm\r\nttl: 60\r\nauthorization: vapid t=a.b.c, k=BA\r\n";

    #[tokio::test]
    async fn a_valid_push_rings_its_device_and_a_leaking_or_unsigned_one_is_counted() {
        let keys = vec![DeviceKeys::generate(), DeviceKeys::generate()];
        let subscription = keys[1].subscription("http://x/".into());
        let doorbells: Vec<Arc<Doorbell>> = vec![Arc::default(), Arc::default()];
        let mut secrets = Secrets::default();
        secrets.add("the text".into(), b"meet at noon".to_vec());
        let receiver = Receiver::start(keys, doorbells.clone(), secrets)
            .await
            .unwrap();
        let public =
            web_push_native::p256::PublicKey::from_sec1_bytes(&subscription.p256dh).unwrap();
        let auth = Auth::clone_from_slice(&subscription.auth);
        let seal = |plain: &[u8]| web_push_native::encrypt(plain.to_vec(), &public, &auth).unwrap();
        let address = receiver.address;

        let notice = seal(&PushNotice::new_messages(3).to_json());
        assert_eq!(post(address, "/push/1", PUSH_HEADERS, &notice).await, 201);
        let rung = tokio::time::timeout(Duration::from_secs(5), doorbells[1].answer());
        assert!(rung.await.unwrap().is_some(), "the device's doorbell rang");

        let chatty = seal(br#"{"tidings":"new","count":1,"text":"meet at noon"}"#);
        assert_eq!(post(address, "/push/1", PUSH_HEADERS, &chatty).await, 201);
        let extra = seal(br#"{"tidings":"new","count":1,"from":"x"}"#);
        assert_eq!(post(address, "/push/1", PUSH_HEADERS, &extra).await, 201);
        let unsigned = "content-encoding: aes128gcm\r\nttl: 60\r\n";
        assert_eq!(post(address, "/push/1", unsigned, &notice).await, 401);
        // Encrypted to device 1, posted to device 0: it does not decrypt there.
        assert_eq!(post(address, "/push/0", PUSH_HEADERS, &notice).await, 400);
        assert_eq!(post(address, "/push/7", PUSH_HEADERS, &notice).await, 404);
        let huge = vec![0u8; MAX_PUSH_BODY_BYTES + 1];
        assert_eq!(post(address, "/push/1", PUSH_HEADERS, &huge).await, 413);

        let seen = receiver.stop().await;
        assert_eq!(seen.pushes, 3);
        assert_eq!(seen.leaked, 2, "{:?}", seen.problems);
        assert_eq!(seen.bad, 4, "{:?}", seen.problems);
        let counts: Vec<u32> = seen.arrivals.iter().map(|arrival| arrival.count).collect();
        assert_eq!(counts, [3, 1, 1]);
    }

    #[test]
    fn pushes_closer_than_the_interval_per_device_are_counted() {
        let at = |device, arrived_ms| Arrival {
            device,
            arrived_ms,
            count: 1,
        };
        let seen = Seen {
            arrivals: vec![
                at(0, 1000),
                at(1, 1100),
                at(0, 1950),
                at(1, 1500),
                at(0, 2400),
            ],
            ..Seen::default()
        };
        let interval = Duration::from_secs(1);
        assert_eq!(seen.too_soon(interval, Duration::from_millis(100)), 2);
        assert_eq!(seen.too_soon(interval, Duration::from_millis(600)), 0);
    }

    #[test]
    fn secrets_are_found_anywhere_in_a_body() {
        let mut secrets = Secrets::default();
        secrets.add("the text".into(), b"hello there".to_vec());
        secrets.add("nothing".into(), Vec::new());
        assert_eq!(secrets.found_in(b"xx hello there yy"), Some("the text"));
        assert_eq!(secrets.found_in(b"hello"), None);
        assert_eq!(secrets.found_in(br#"{"tidings":"new","count":1}"#), None);
    }
}
