//! The WebSocket transport (`/tcp/N/ws`, and `/tcp/N/tls/ws` with TLS the relay terminates
//! itself), carrying the same Noise + Yamux as plain TCP: browsers reach the relay this way.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use libp2p::{
    PeerId, Transport,
    core::{muxing::StreamMuxerBox, transport::Boxed, upgrade::Version},
    identity::Keypair,
    noise, tcp, websocket, yamux,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// Largest WebSocket message accepted. A peer writes one Noise frame (at most 65,537 bytes)
/// per message; the library's own default (256 MiB) would let one peer make the relay
/// buffer that much.
pub const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;

/// Largest PEM file (certificate chain or key) read from disk.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why the TLS certificate or key for `/tls/ws` listeners cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is larger than any certificate chain or key.
    #[error("{path}: larger than {MAX_PEM_BYTES} bytes, not a PEM certificate or key")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not PEM, or holds nothing of the kind asked for.
    #[error("{path}: no PEM {what} in it ({reason})")]
    Pem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
        /// What the PEM parser said.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not belong to the certificate).
    #[error("TLS certificate {certificate} with key {key}: {reason}")]
    Rejected {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// Reads at most [`MAX_PEM_BYTES`] of `path`.
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The server side of `/tls/ws`: a PEM certificate chain and its PEM private key (PKCS#8,
/// PKCS#1 or SEC1).
pub fn load_tls(certificate: &Path, key: &Path) -> Result<websocket::tls::Config, TlsError> {
    let pem_error = |path: &Path, what, reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        what,
        reason,
    };
    let chain_pem = read_bounded(certificate)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(certificate, "certificate", error.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(certificate, "certificate", "none found".into()));
    }
    let key_pem = read_bounded(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|error| pem_error(key, "private key", error.to_string()))?;
    // libp2p's `PrivateKey::new` panics on bytes it cannot classify: check them first.
    let der = private.secret_der().to_vec();
    PrivateKeyDer::try_from(der.clone())
        .map_err(|reason| pem_error(key, "private key", reason.to_string()))?;
    let chain = chain
        .into_iter()
        .map(|cert| websocket::tls::Certificate::new(cert.to_vec()));
    websocket::tls::Config::new(websocket::tls::PrivateKey::new(der), chain).map_err(|error| {
        TlsError::Rejected {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            reason: error.to_string(),
        }
    })
}

/// The WebSocket transport over TCP with Noise and Yamux (`yamux` configured as for TCP),
/// terminating TLS for `/tls/ws` addresses when `tls` is given.
pub fn transport(
    keypair: &Keypair,
    tls: Option<websocket::tls::Config>,
    yamux: yamux::Config,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let mut ws = websocket::Config::new(tcp);
    ws.set_max_data_size(MAX_WS_MESSAGE_BYTES);
    if let Some(tls) = tls {
        ws.set_tls_config(tls);
    }
    Ok(ws
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(keypair)?)
        .multiplex(yamux)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}
