//! The client's WebSocket transport: `/ws` and `/tls/ws` relay addresses (DNS names too),
//! with the same Noise + Yamux as TCP, trusting the web PKI roots plus the certificates in
//! the data dir's [`TRUSTED_CERTS_FILE`].

use std::{io::Read, path::Path};

use libp2p::{
    PeerId, Transport,
    core::{muxing::StreamMuxerBox, transport::Boxed, upgrade::Version},
    dns,
    identity::Keypair,
    noise, tcp, websocket, yamux,
};
use rustls_pki_types::{CertificateDer, pem::PemObject};

/// Why the WebSocket transport or its trusted certificates cannot be set up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WebSocketError {
    /// [`TRUSTED_CERTS_FILE`] is unreadable, too large or not PEM certificates.
    #[error("{path}: {reason}")]
    TrustedCerts {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The transport could not be built (DNS configuration, keys, a refused certificate).
    #[error("websocket transport: {0}")]
    Setup(String),
}

/// File in the data dir whose PEM certificates are trusted for `/tls/ws` relays besides the
/// web PKI roots (a relay's self-signed certificate, a private CA).
pub const TRUSTED_CERTS_FILE: &str = "trusted-certs.pem";

/// Largest [`TRUSTED_CERTS_FILE`] read.
pub const MAX_TRUSTED_CERTS_BYTES: u64 = 1024 * 1024;

/// Largest WebSocket message accepted from the relay (it writes one Noise frame, at most
/// 65,537 bytes, per message; the library's default would be 256 MiB).
const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;

/// The DER certificates of `data_dir`'s [`TRUSTED_CERTS_FILE`]; none if there is no file.
pub fn trusted_certs(data_dir: &Path) -> Result<Vec<Vec<u8>>, WebSocketError> {
    let path = data_dir.join(TRUSTED_CERTS_FILE);
    let bad = |reason: String| WebSocketError::TrustedCerts {
        path: path.display().to_string(),
        reason,
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(bad(error.to_string())),
    };
    let mut pem = Vec::new();
    file.take(MAX_TRUSTED_CERTS_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|error| bad(error.to_string()))?;
    if pem.len() as u64 > MAX_TRUSTED_CERTS_BYTES {
        return Err(bad(format!("larger than {MAX_TRUSTED_CERTS_BYTES} bytes")));
    }
    CertificateDer::pem_slice_iter(&pem)
        .map(|cert| cert.map(|cert| cert.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(format!("not PEM certificates: {error}")))
}

/// The WebSocket transport (over DNS and TCP), trusting `trusted` (DER) for `/tls/ws`.
pub fn transport(
    keypair: &Keypair,
    trusted: &[Vec<u8>],
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, WebSocketError> {
    let failed = |error: &dyn std::fmt::Display| WebSocketError::Setup(error.to_string());
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let mut ws =
        websocket::Config::new(dns::tokio::Transport::system(tcp).map_err(|e| failed(&e))?);
    ws.set_max_data_size(MAX_WS_MESSAGE_BYTES);
    let mut tls = websocket::tls::Config::builder();
    for der in trusted {
        tls.add_trust(&websocket::tls::Certificate::new(der.clone()))
            .map_err(|e| failed(&e))?;
    }
    ws.set_tls_config(tls.finish());
    Ok(ws
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(keypair).map_err(|e| failed(&e))?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}
