//! The `[websocket]` table (the relay's own TLS for `/tls/ws`) and the `[web]` table (serving
//! the browser page).

use std::path::{Path, PathBuf};

use libp2p::{Multiaddr, multiaddr::Protocol};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// TLS terminated by the relay itself on `/tls/ws` listen addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// PEM certificate chain for `/tls/ws` listeners (a relative path is inside the data
    /// dir); empty: no TLS listener.
    pub tls_certificate: String,
    /// PEM private key of that certificate.
    pub tls_key: String,
}

impl WebSocketConfig {
    /// The certificate and key files, resolved against `data_dir`, if TLS is configured.
    pub fn tls_files(&self, data_dir: &Path) -> Option<(PathBuf, PathBuf)> {
        if self.tls_certificate.is_empty() {
            return None;
        }
        Some((
            data_dir.join(&self.tls_certificate),
            data_dir.join(&self.tls_key),
        ))
    }

    /// Checks that certificate and key come together and that a `/tls/ws` (or `/wss`) listen
    /// address has them.
    pub(super) fn validate(&self, listen: &[Multiaddr]) -> Result<(), ConfigError> {
        if self.tls_certificate.is_empty() != self.tls_key.is_empty() {
            return Err(ConfigError::Incomplete {
                key: "websocket.tls_certificate",
                reason: "tls_certificate and tls_key are set together or not at all".into(),
            });
        }
        if self.tls_certificate.is_empty()
            && let Some(address) = listen.iter().find(|address| is_tls_ws(address))
        {
            return Err(ConfigError::Incomplete {
                key: "websocket.tls_certificate",
                reason: format!(
                    "listen address {address} needs a TLS certificate and key \
                     (websocket.tls_certificate, websocket.tls_key), or listen on /ws behind a \
                     TLS proxy"
                ),
            });
        }
        Ok(())
    }
}

/// Whether `address` is a WebSocket address with TLS (`/tls/ws` or `/wss`).
pub fn is_tls_ws(address: &Multiaddr) -> bool {
    let mut tls = false;
    for protocol in address.iter() {
        match protocol {
            Protocol::Tls => tls = true,
            Protocol::Wss(_) => return true,
            Protocol::Ws(_) if tls => return true,
            _ => {}
        }
    }
    false
}

/// Serving the browser page over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// host:port to serve the page on; empty: not served.
    pub listen: String,
    /// Directory of the built page (a relative path is inside the data dir).
    pub dir: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            dir: "web".into(),
        }
    }
}

impl WebConfig {
    /// The address to serve on, if any.
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::BadAddress {
                address: self.listen.clone(),
                reason: "web.listen: expected host:port, e.g. 127.0.0.1:8717".into(),
            })
    }

    /// The page directory, resolved against `data_dir`.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(text: &[&str]) -> Vec<Multiaddr> {
        text.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_tls_listener_without_a_certificate_is_refused_by_name() {
        let config = WebSocketConfig::default();
        let listen = addrs(&["/ip4/127.0.0.1/tcp/0/tls/ws"]);
        let error = config.validate(&listen).unwrap_err().to_string();
        assert!(error.contains("websocket.tls_certificate"), "{error}");
        assert!(error.contains("/tls/ws"), "{error}");
        assert!(
            config
                .validate(&addrs(&["/ip4/127.0.0.1/tcp/0/ws"]))
                .is_ok()
        );
        let half = WebSocketConfig {
            tls_certificate: "cert.pem".into(),
            tls_key: String::new(),
        };
        assert!(half.validate(&[]).is_err());
    }

    #[test]
    fn tls_websocket_addresses_are_recognised() {
        assert!(is_tls_ws(&"/ip4/1.2.3.4/tcp/443/tls/ws".parse().unwrap()));
        assert!(is_tls_ws(&"/ip4/1.2.3.4/tcp/443/wss".parse().unwrap()));
        assert!(!is_tls_ws(&"/ip4/1.2.3.4/tcp/80/ws".parse().unwrap()));
        assert!(!is_tls_ws(&"/ip4/1.2.3.4/tcp/80".parse().unwrap()));
    }

    #[test]
    fn the_web_listen_address_must_be_host_and_port() {
        let mut config = WebConfig::default();
        assert_eq!(config.listen_addr().unwrap(), None);
        config.listen = "127.0.0.1:0".into();
        assert!(config.listen_addr().unwrap().is_some());
        config.listen = "localhost".into();
        assert!(config.listen_addr().is_err());
    }
}
