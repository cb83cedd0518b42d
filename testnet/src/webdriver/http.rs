//! JSON over HTTP/1.1 to chromedriver on loopback: one short connection per request.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, body::Bytes};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Largest answer read from chromedriver (a full-page screenshot in base64 fits easily).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Longest a single WebDriver command may take (an async script waits at most this long).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A WebDriver endpoint at `address`.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub address: SocketAddr,
}

impl Endpoint {
    /// Sends `method path` with `body` (JSON) and returns the answer's `value`, or the
    /// WebDriver error it names.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        tokio::time::timeout(COMMAND_TIMEOUT, self.call_once(method.clone(), path, body))
            .await
            .with_context(|| {
                format!("chromedriver did not answer {method} {path} in {COMMAND_TIMEOUT:?}")
            })?
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let stream = TcpStream::connect(self.address)
            .await
            .with_context(|| format!("connecting to chromedriver at {}", self.address))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(connection);
        let payload = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body)?),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, self.address.to_string())
            .header(
                hyper::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(Full::new(payload))?;
        let answer = sender.send_request(request).await?;
        let status = answer.status();
        let bytes = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|error| anyhow::anyhow!("reading chromedriver's answer: {error}"))?
            .to_bytes();
        driver.abort();
        let mut answer: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!("chromedriver answered {method} {path} with no JSON ({status})")
        })?;
        let value = answer
            .get_mut("value")
            .map(Value::take)
            .unwrap_or(Value::Null);
        if !status.is_success() {
            let error = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            let message = value.get("message").and_then(Value::as_str).unwrap_or("");
            bail!("WebDriver {method} {path}: {error}: {message}");
        }
        Ok(value)
    }
}
