//! One push: the content-free notice encrypted to the device (RFC 8291, aes128gcm), signed
//! for the push service (VAPID), POSTed once with a deadline, and what the answer means.

use std::{sync::Arc, time::Duration};

use http::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use tidings_protocol::push::{PUSH_AUTH_BYTES, PushNotice, PushSubscription};
use web_push_native::{Auth, WebPushBuilder, p256};

use super::{
    guard::{self, GuardedResolver},
    vapid::VapidKey,
};
use crate::{
    config::{MAX_RETRY_AFTER_SECS, PushConfig},
    metrics::PushFailure,
};

/// What became of one POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The push service took it (2xx).
    Sent,
    /// 404 or 410: the subscription is gone for good.
    Gone,
    /// Worth another try (429, 5xx, timeout, no connection), after `after` if the service
    /// said (`Retry-After`, capped).
    Retry {
        /// Why it failed.
        reason: PushFailure,
        /// The service's `Retry-After`.
        after: Option<Duration>,
    },
    /// Not worth another try (another 4xx, a refused address, a request that cannot be built).
    Failed(PushFailure),
}

/// Sends pushes: the HTTP client, the VAPID key and the headers' settings.
pub struct Sender {
    client: reqwest::Client,
    vapid: Arc<VapidKey>,
    ttl: Duration,
    urgency: HeaderValue,
    contact: String,
    timeout: Duration,
    allow_private: bool,
}

impl Sender {
    /// A sender for `config`, signing with `vapid`.
    pub fn new(config: &PushConfig, vapid: Arc<VapidKey>) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("tidings-relay/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private_endpoints {
            client = client
                .https_only(true)
                .dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            client: client.build()?,
            vapid,
            ttl: Duration::from_secs(config.ttl_secs),
            urgency: HeaderValue::from_static(config.urgency.as_str()),
            contact: config.contact.clone(),
            timeout,
            allow_private: config.allow_private_endpoints,
        })
    }

    /// POSTs a notice of `count` new messages to `subscription`'s endpoint.
    pub async fn send(&self, subscription: &PushSubscription, count: u32) -> Outcome {
        let request = match self.request(subscription, count) {
            Ok(request) => request,
            Err(failure) => return Outcome::Failed(failure),
        };
        match tokio::time::timeout(self.timeout, self.client.execute(request)).await {
            Err(_) => Outcome::Retry {
                reason: PushFailure::Timeout,
                after: None,
            },
            Ok(Ok(response)) => classify(response.status(), response.headers()),
            Ok(Err(error)) if guard::refused_by_resolver(&error) => {
                Outcome::Failed(PushFailure::RefusedAddress)
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "push POST failed");
                let reason = if error.is_timeout() {
                    PushFailure::Timeout
                } else {
                    PushFailure::Connect
                };
                Outcome::Retry {
                    reason,
                    after: None,
                }
            }
        }
    }

    fn request(
        &self,
        subscription: &PushSubscription,
        count: u32,
    ) -> Result<reqwest::Request, PushFailure> {
        let endpoint = guard::check_endpoint(&subscription.endpoint, self.allow_private)
            .map_err(|_| PushFailure::RefusedAddress)?;
        let key = p256::PublicKey::from_sec1_bytes(&subscription.p256dh)
            .map_err(|_| PushFailure::Build)?;
        if subscription.auth.len() != PUSH_AUTH_BYTES {
            return Err(PushFailure::Build);
        }
        let auth = Auth::clone_from_slice(&subscription.auth);
        let notice = PushNotice::new_messages(count).to_json();
        let mut request = WebPushBuilder::new(endpoint.clone(), key, auth)
            .with_valid_duration(self.ttl)
            .build(notice)
            .map_err(|_| PushFailure::Build)?;
        let authorization = self
            .vapid
            .authorization(&endpoint, &self.contact)
            .map_err(|_| PushFailure::Build)?;
        let headers = request.headers_mut();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::try_from(authorization).map_err(|_| PushFailure::Build)?,
        );
        headers.insert("urgency", self.urgency.clone());
        reqwest::Request::try_from(request).map_err(|_| PushFailure::Build)
    }
}

/// What a push service's answer means.
fn classify(status: reqwest::StatusCode, headers: &http::HeaderMap) -> Outcome {
    match status.as_u16() {
        200..=299 => Outcome::Sent,
        404 | 410 => Outcome::Gone,
        429 => Outcome::Retry {
            reason: PushFailure::Status429,
            after: retry_after(headers),
        },
        500..=599 => Outcome::Retry {
            reason: PushFailure::Status5xx,
            after: retry_after(headers),
        },
        code => {
            if code == 401 || code == 403 {
                tracing::warn!(
                    status = code,
                    "push service refused the relay's VAPID authorization"
                );
            }
            Outcome::Failed(PushFailure::Status4xx)
        }
    }
}

/// `Retry-After` in seconds (an HTTP date is ignored: the backoff applies), at most an hour.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(MAX_RETRY_AFTER_SECS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_outcomes() {
        let mut headers = http::HeaderMap::new();
        let status = |code| reqwest::StatusCode::from_u16(code).unwrap();
        assert_eq!(classify(status(201), &headers), Outcome::Sent);
        assert_eq!(classify(status(410), &headers), Outcome::Gone);
        assert_eq!(classify(status(404), &headers), Outcome::Gone);
        assert_eq!(
            classify(status(400), &headers),
            Outcome::Failed(PushFailure::Status4xx)
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(
            classify(status(429), &headers),
            Outcome::Retry {
                reason: PushFailure::Status429,
                after: Some(Duration::from_secs(MAX_RETRY_AFTER_SECS)),
            }
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            classify(status(503), &headers),
            Outcome::Retry {
                reason: PushFailure::Status5xx,
                after: None,
            }
        );
    }
}
