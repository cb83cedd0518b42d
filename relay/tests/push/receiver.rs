//! A Web Push receiver on loopback: records every POST (path, headers, body, arrival time),
//! answers with the status chosen for its path (or never), and decrypts bodies with the
//! `ece` crate (Mozilla's implementation, not the relay's) for a subscription made by `ece`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64ct::{Base64UrlUnpadded, Encoding};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use tidings_protocol::push::{PushNotice, PushSubscription};
use tokio::net::TcpListener;
use web_push_native::jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ES256PublicKey, NoCustomClaims,
};

/// One POST as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_string())
    }
}

/// How the receiver answers a path.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status (and a `Retry-After` if given), every time.
    Status(u16, Option<u64>),
    /// These statuses in turn, then the last one forever.
    Sequence(Vec<(u16, Option<u64>)>),
    /// Never answers (the connection stays open).
    Hang,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    answers: HashMap<String, Answer>,
    served: HashMap<String, usize>,
}

/// The receiver; cloneable.
#[derive(Clone)]
pub struct Receiver {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, state }
    }

    /// Answers POSTs to `path` so from now on (the default is 201).
    pub fn answer(&self, path: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(path.to_string(), answer);
    }

    /// What arrived at `path` so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.state
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `count` POSTs arrived at `path` (panics after `within`).
    pub async fn wait_for(&self, path: &str, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received(path);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} pushes arrived at {path} within {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A fresh subscription (keys made by `ece`) for `path` on this receiver.
    pub fn subscription(&self, path: &str) -> Subscriber {
        let (keys, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        Subscriber {
            subscription: PushSubscription {
                endpoint: format!("http://{}{path}", self.address),
                p256dh: keys.pub_as_raw().unwrap(),
                auth: auth.to_vec(),
            },
            keys: keys.raw_components().unwrap(),
            auth: auth.to_vec(),
        }
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    let body = request.into_body().collect().await?.to_bytes().to_vec();
    let answer = {
        let mut state = state.lock().unwrap();
        state.received.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        let served = state.served.entry(path.clone()).or_default();
        let nth = *served;
        *served += 1;
        match state.answers.get(&path) {
            None => Some((201, None)),
            Some(Answer::Status(code, after)) => Some((*code, *after)),
            Some(Answer::Sequence(list)) => list.get(nth).or(list.last()).copied(),
            Some(Answer::Hang) => None,
        }
    };
    let Some((code, retry_after)) = answer else {
        std::future::pending::<()>().await;
        unreachable!();
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    Ok(response)
}

/// A subscription and the keys to read what is pushed to it.
pub struct Subscriber {
    pub subscription: PushSubscription,
    keys: ece::crypto::EcKeyComponents,
    auth: Vec<u8>,
}

impl Subscriber {
    /// Decrypts a push body (aes128gcm) to its plaintext.
    pub fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        ece::decrypt(&self.keys, &self.auth, body).unwrap()
    }

    /// Decrypts a push body and reads it as the notice.
    pub fn notice(&self, push: &Received) -> PushNotice {
        let plain = self.decrypt(&push.body);
        PushNotice::from_json(&plain)
            .unwrap_or_else(|| panic!("not a notice: {}", String::from_utf8_lossy(&plain)))
    }
}

/// Checks `Authorization: vapid t=<jwt>, k=<key>`: the key is `vapid_key`, the token
/// verifies with it, its audience is `origin`, its subject the contact. Returns the claims.
pub fn check_vapid(push: &Received, vapid_key: &[u8], origin: &str, contact: &str) {
    let header = push
        .header("authorization")
        .expect("an Authorization header");
    let rest = header.strip_prefix("vapid t=").expect("vapid scheme");
    let (token, key) = rest.split_once(", k=").expect("t= and k=");
    assert_eq!(Base64UrlUnpadded::decode_vec(key).unwrap(), vapid_key);
    let public = ES256PublicKey::from_bytes(vapid_key).unwrap();
    let claims = public
        .verify_token::<NoCustomClaims>(token, None)
        .expect("the VAPID token verifies with the relay's key");
    let audiences = claims.audiences.expect("an audience").into_set();
    assert_eq!(
        audiences.into_iter().collect::<Vec<_>>(),
        vec![origin.to_string()]
    );
    assert_eq!(claims.subject.as_deref(), Some(contact));
    assert!(claims.expires_at.is_some(), "the token expires");
}
