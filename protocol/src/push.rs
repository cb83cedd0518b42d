//! Push subscriptions (Web Push, RFC 8030 / 8291 / 8292): what a device registers with its
//! home relay so the relay can wake it, and the content-free payload the relay sends.

use serde::{Deserialize, Serialize};

/// Longest push endpoint URL accepted, in bytes (UnifiedPush and browser endpoints are
/// well under 512).
pub const MAX_PUSH_ENDPOINT_BYTES: usize = 1024;

/// Length of a P-256 public key in uncompressed SEC1 form (`0x04 || X || Y`): the
/// subscription's `p256dh` and the relay's VAPID key.
pub const P256_PUBLIC_KEY_BYTES: usize = 65;

/// Length of a Web Push authentication secret (RFC 8291 section 3.2).
pub const PUSH_AUTH_BYTES: usize = 16;

/// Where and how to push to one device: the endpoint its push service (a UnifiedPush
/// distributor such as ntfy, or a browser's push service) gave it, and the RFC 8291 keys the
/// payload is encrypted to. The relay keeps one per device.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    /// The push resource URL (`https://`; `http://` only where the relay allows it).
    #[serde(rename = "e")]
    pub endpoint: String,
    /// The device's P-256 ECDH public key, uncompressed ([`P256_PUBLIC_KEY_BYTES`]).
    #[serde(rename = "k", with = "serde_bytes")]
    pub p256dh: Vec<u8>,
    /// The authentication secret ([`PUSH_AUTH_BYTES`]).
    #[serde(rename = "a", with = "serde_bytes")]
    pub auth: Vec<u8>,
}

impl std::fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The endpoint is a capability (anyone holding it can push to the device): not logged.
        f.debug_struct("PushSubscription")
            .field("endpoint_bytes", &self.endpoint.len())
            .finish_non_exhaustive()
    }
}

/// Why a push subscription is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushSubscriptionError {
    /// The endpoint is longer than [`MAX_PUSH_ENDPOINT_BYTES`].
    #[error("the endpoint is longer than {MAX_PUSH_ENDPOINT_BYTES} bytes")]
    EndpointTooLong,
    /// The endpoint is not an absolute `https://` or `http://` URL with a host.
    #[error("the endpoint must be an https:// URL with a host")]
    EndpointScheme,
    /// `p256dh` is not an uncompressed P-256 point.
    #[error(
        "p256dh must be {P256_PUBLIC_KEY_BYTES} bytes starting with 0x04 (an uncompressed P-256 key)"
    )]
    PublicKey,
    /// `auth` has the wrong length.
    #[error("auth must be {PUSH_AUTH_BYTES} bytes")]
    Auth,
}

impl PushSubscriptionError {
    /// What is wrong, as a static string (for decode errors).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EndpointTooLong => "the endpoint is too long",
            Self::EndpointScheme => "the endpoint is not an http(s) URL with a host",
            Self::PublicKey => "p256dh is not an uncompressed P-256 key",
            Self::Auth => "auth is not 16 bytes",
        }
    }
}

impl PushSubscription {
    /// Checks the shape of every field (the relay also checks the key is a point on the
    /// curve, with its Web Push library, and where the endpoint may point).
    pub fn validate(&self) -> Result<(), PushSubscriptionError> {
        if self.endpoint.len() > MAX_PUSH_ENDPOINT_BYTES {
            return Err(PushSubscriptionError::EndpointTooLong);
        }
        let rest = self
            .endpoint
            .strip_prefix("https://")
            .or_else(|| self.endpoint.strip_prefix("http://"))
            .ok_or(PushSubscriptionError::EndpointScheme)?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty()
            || self
                .endpoint
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(PushSubscriptionError::EndpointScheme);
        }
        if self.p256dh.len() != P256_PUBLIC_KEY_BYTES || self.p256dh.first() != Some(&0x04) {
            return Err(PushSubscriptionError::PublicKey);
        }
        if self.auth.len() != PUSH_AUTH_BYTES {
            return Err(PushSubscriptionError::Auth);
        }
        Ok(())
    }
}

/// The plaintext of every push (encrypted to the device before it leaves the relay): that
/// there are new messages and how many since the last push, nothing about them. JSON, so an
/// app's push handler can read it without this crate: `{"tidings":"new","count":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushNotice {
    /// Always `"new"`.
    pub tidings: PushKind,
    /// Mailbox entries that arrived for the device since the previous push (at least 1).
    pub count: u32,
}

/// What a push says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushKind {
    /// New messages wait at the home relay.
    New,
}

impl PushNotice {
    /// A notice of `count` new entries.
    pub fn new_messages(count: u32) -> Self {
        Self {
            tidings: PushKind::New,
            count,
        }
    }

    /// The JSON bytes sent (before encryption).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a decrypted push; `None` if it is not a Tidings notice.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 256 {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(endpoint: &str) -> PushSubscription {
        let mut p256dh = vec![7u8; P256_PUBLIC_KEY_BYTES];
        p256dh[0] = 4;
        PushSubscription {
            endpoint: endpoint.into(),
            p256dh,
            auth: vec![1; PUSH_AUTH_BYTES],
        }
    }

    #[test]
    fn subscriptions_are_checked_field_by_field() {
        assert_eq!(subscription("https://ntfy.sh/up123").validate(), Ok(()));
        assert_eq!(subscription("http://127.0.0.1:8080/p").validate(), Ok(()));
        for bad in [
            "ftp://x/y",
            "https://",
            "https:///path",
            "https://a b/",
            "ntfy.sh/x",
        ] {
            assert_eq!(
                subscription(bad).validate(),
                Err(PushSubscriptionError::EndpointScheme),
                "{bad}"
            );
        }
        let long = format!("https://x/{}", "a".repeat(MAX_PUSH_ENDPOINT_BYTES));
        assert_eq!(
            subscription(&long).validate(),
            Err(PushSubscriptionError::EndpointTooLong)
        );
        let mut short_key = subscription("https://x/");
        short_key.p256dh.pop();
        assert_eq!(short_key.validate(), Err(PushSubscriptionError::PublicKey));
        let mut compressed = subscription("https://x/");
        compressed.p256dh[0] = 2;
        assert_eq!(compressed.validate(), Err(PushSubscriptionError::PublicKey));
        let mut auth = subscription("https://x/");
        auth.auth.push(0);
        assert_eq!(auth.validate(), Err(PushSubscriptionError::Auth));
    }

    #[test]
    fn the_notice_is_small_json_with_a_count_only() {
        let notice = PushNotice::new_messages(3);
        let json = notice.to_json();
        assert_eq!(json, br#"{"tidings":"new","count":3}"#);
        assert_eq!(PushNotice::from_json(&json), Some(notice));
        assert_eq!(PushNotice::from_json(b"{\"tidings\":\"old\"}"), None);
    }

    #[test]
    fn debug_leaves_the_endpoint_out() {
        let text = format!("{:?}", subscription("https://push.example/secret-token"));
        assert!(!text.contains("secret-token"), "{text}");
    }
}
