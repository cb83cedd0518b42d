//! The relay serving the browser page over real HTTP on loopback: content types, the
//! Content-Security-Policy, `/tidings.json`, no way out of the page directory, bounded
//! requests; and the `/tls/ws` certificate settings refused with clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tidings_relay::{
    RelayError, RunningRelay,
    testing::{HarnessError, RelayDir},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WASM: &[u8] = b"\0asm\x01\0\0\0";

/// One HTTP answer as read off the socket.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Sends `request` (raw bytes, so paths reach the server exactly as written) and reads the
/// answer until the server closes.
async fn exchange(address: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before reading all of an oversized request.
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes")
        .ok();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(address: SocketAddr, target: &str) -> Answer {
    let request = format!("GET {target} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
    exchange(address, request.as_bytes()).await
}

/// A relay listening on TCP and `/ws`, serving a page dir with a few files, a symlink to its
/// own key and a symlinked directory leading out.
async fn relay_with_page() -> (RelayDir, RunningRelay, SocketAddr) {
    let dir = RelayDir::temp(|config| {
        config.listen = vec![
            "/ip4/127.0.0.1/tcp/0".into(),
            "/ip4/127.0.0.1/tcp/0/ws".into(),
        ];
        config.web.listen = "127.0.0.1:0".into();
        config.web.dir = "page".into();
    })
    .unwrap();
    let page = dir.path().join("page");
    std::fs::create_dir_all(page.join("pkg")).unwrap();
    std::fs::write(
        page.join("index.html"),
        "<!doctype html><title>Tidings</title>",
    )
    .unwrap();
    std::fs::write(page.join("pkg/web.js"), "export default 1;").unwrap();
    std::fs::write(page.join("pkg/web_bg.wasm"), WASM).unwrap();
    std::fs::write(page.join("style.css"), "body{}").unwrap();
    std::fs::write(page.join(".env"), "SECRET").unwrap();
    std::os::unix::fs::symlink(dir.path().join("relay.key"), page.join("key")).unwrap();
    std::os::unix::fs::symlink(dir.path(), page.join("outside")).unwrap();
    let relay = dir.start(None).await.unwrap();
    let web = relay.web_addr().expect("[web] is served");
    (dir, relay, web)
}

#[tokio::test]
async fn files_are_served_with_their_content_types_and_a_strict_policy() {
    let (_dir, relay, web) = relay_with_page().await;
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/pkg/web.js", "text/javascript; charset=utf-8"),
        ("/pkg/web_bg.wasm", "application/wasm"),
        ("/style.css", "text/css; charset=utf-8"),
    ] {
        let answer = get(web, path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.headers["content-type"], kind, "{path}");
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    }
    assert_eq!(get(web, "/pkg/web_bg.wasm").await.body, WASM);

    let ws_port = relay
        .listen_addrs()
        .iter()
        .find(|a| a.to_string().ends_with("/ws"))
        .and_then(|a| {
            a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
        })
        .unwrap();
    let policy = get(web, "/").await.headers["content-security-policy"].clone();
    for part in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(part), "{part} missing from {policy}");
    }
    let connect = policy
        .split(';')
        .find(|d| d.trim().starts_with("connect-src"))
        .unwrap();
    assert_eq!(
        connect.trim(),
        format!("connect-src 'self' ws://127.0.0.1:{ws_port}"),
        "only this origin and the relay's WebSocket (not its plain TCP port)"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn tidings_json_names_the_relay_and_its_addresses_with_the_peer_id() {
    let (_dir, relay, web) = relay_with_page().await;
    let answer = get(web, "/tidings.json").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["peer_id"], relay.peer_id().to_string());
    let mut addresses: Vec<String> = json["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let mut dial: Vec<String> = relay.dial_addrs().iter().map(|a| a.to_string()).collect();
    addresses.sort();
    dial.sort();
    assert_eq!(addresses, dial);
    assert!(addresses.iter().any(|a| a.contains("/ws/p2p/")));
    relay.shutdown().await;
}

#[tokio::test]
async fn nothing_outside_the_page_directory_can_be_read() {
    let (dir, relay, web) = relay_with_page().await;
    let key = std::fs::read(dir.path().join("relay.key")).unwrap();
    for target in [
        "/../relay.key",
        "/pkg/../../relay.key",
        "/%2e%2e/relay.key",
        "/%2E%2E%2Frelay.key",
        "/pkg/..%2f..%2frelay.key",
        "/pkg/%2e%2e%5c%2e%2e%5crelay.key",
        "http://relay/../relay.key",
        "//etc/passwd",
        "/etc/passwd",
        "/key",
        "/outside/relay.key",
        "/outside/relay.toml",
        "/.env",
        "/%00",
        "/pkg",
    ] {
        let answer = get(web, target).await;
        assert!(
            matches!(answer.status, 400 | 404),
            "{target}: status {}",
            answer.status
        );
        assert!(
            !answer.body.windows(key.len()).any(|w| w == key.as_slice()),
            "{target} leaked the key"
        );
        assert!(answer.headers.contains_key("content-security-policy"));
    }
    assert_eq!(get(web, "/%2e%2e/relay.key").await.status, 400);
    assert_eq!(get(web, "/outside/relay.toml").await.status, 404);
    relay.shutdown().await;
}

#[tokio::test]
async fn oversized_requests_and_other_methods_are_refused() {
    let (_dir, relay, web) = relay_with_page().await;
    let long = format!("/{}", "a".repeat(2000));
    assert_eq!(get(web, &long).await.status, 414);

    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: relay\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
        "x".repeat(64 * 1024)
    );
    let answer = exchange(web, huge_header.as_bytes()).await;
    assert!(
        answer.status == 431 || answer.status == 0,
        "an oversized head is refused, got {}",
        answer.status
    );

    let post =
        b"POST / HTTP/1.1\r\nHost: relay\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let answer = exchange(web, post).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.headers["allow"], "GET, HEAD");

    let head = b"HEAD /pkg/web_bg.wasm HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n";
    let answer = exchange(web, head).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-length"], WASM.len().to_string());
    assert!(answer.body.is_empty());
    // Still serving after all that.
    assert_eq!(get(web, "/").await.status, 200);
    relay.shutdown().await;
}

/// Starts a relay listening on `/tls/ws` with `[websocket]` set by `tweak` (files written
/// into the data dir by `files`): the error it refuses to start with.
async fn tls_start_error(
    tweak: impl FnOnce(&mut tidings_relay::RelayConfig),
    files: &[(&str, &[u8])],
) -> RelayError {
    let dir = RelayDir::temp(|config| {
        config.listen = vec!["/ip4/127.0.0.1/tcp/0/tls/ws".into()];
        tweak(config);
    })
    .unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    match dir.start(None).await {
        Err(HarnessError::Relay(error)) => error,
        Err(other) => panic!("unexpected harness error {other}"),
        Ok(_) => panic!("the relay started"),
    }
}

fn set_tls(config: &mut tidings_relay::RelayConfig) {
    config.websocket.tls_certificate = "cert.pem".into();
    config.websocket.tls_key = "key.pem".into();
}

#[tokio::test]
async fn unusable_tls_settings_are_refused_with_clear_errors() {
    let error = RelayDir::temp(|config| {
        config.listen = vec!["/ip4/127.0.0.1/tcp/0/tls/ws".into()];
    })
    .err()
    .expect("a /tls/ws listener without a certificate is refused");
    assert!(
        error.to_string().contains("websocket.tls_certificate"),
        "{error}"
    );

    let missing = tls_start_error(set_tls, &[]).await;
    assert!(
        matches!(missing, RelayError::Tls(_)) && missing.to_string().contains("cert.pem"),
        "{missing}"
    );

    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = certified.cert.pem();
    let key = certified.key_pair.serialize_pem();
    let garbage = tls_start_error(
        set_tls,
        &[
            ("cert.pem", b"not a certificate"),
            ("key.pem", key.as_bytes()),
        ],
    )
    .await;
    assert!(
        garbage.to_string().contains("no PEM certificate"),
        "{garbage}"
    );

    let no_key = tls_start_error(
        set_tls,
        &[("cert.pem", cert.as_bytes()), ("key.pem", cert.as_bytes())],
    )
    .await;
    assert!(
        no_key.to_string().contains("no PEM private key"),
        "{no_key}"
    );

    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let mismatched = tls_start_error(
        set_tls,
        &[
            ("cert.pem", cert.as_bytes()),
            ("key.pem", other.key_pair.serialize_pem().as_bytes()),
        ],
    )
    .await;
    assert!(
        matches!(mismatched, RelayError::Tls(_)),
        "a key of another certificate: {mismatched}"
    );
}

#[tokio::test]
async fn a_missing_page_directory_is_a_start_error() {
    let dir = RelayDir::temp(|config| {
        config.web.listen = "127.0.0.1:0".into();
        config.web.dir = "nowhere".into();
    })
    .unwrap();
    match dir.start(None).await {
        Err(HarnessError::Relay(RelayError::Io { path, .. })) => {
            assert!(path.contains("web.dir"), "{path}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("started without its page directory"),
    }
}
