//! The relay's VAPID key (RFC 8292): a P-256 key in `vapid.key` (the raw 32-byte scalar,
//! mode 0600), written by `init` or at the first `run` of an older data dir, and the
//! `Authorization: vapid t=..., k=...` header it signs for each push.

use std::path::Path;

use base64ct::{Base64UrlUnpadded, Encoding};
use http::Uri;
use web_push_native::jwt_simple::prelude::{
    Claims, Duration, ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use zeroize::Zeroizing;

use crate::node_key::{NodeKeyError, read_private, write_new_secret};

/// File name of the VAPID key inside the data dir.
pub const VAPID_KEY_FILE: &str = "vapid.key";

/// Length of the file: a P-256 secret scalar.
const SCALAR_BYTES: usize = 32;

/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
const TOKEN_HOURS: u64 = 12;

/// The relay's VAPID key pair.
pub struct VapidKey {
    pair: ES256KeyPair,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey").finish_non_exhaustive()
    }
}

fn invalid(path: &Path, reason: impl ToString) -> NodeKeyError {
    NodeKeyError::Invalid {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl VapidKey {
    /// Writes a fresh key to `data_dir/vapid.key` (mode 0600), refusing to overwrite.
    pub fn create(data_dir: &Path) -> Result<Self, NodeKeyError> {
        let path = data_dir.join(VAPID_KEY_FILE);
        let pair = ES256KeyPair::generate();
        let bytes = Zeroizing::new(pair.to_bytes());
        write_new_secret(&path, &bytes)?;
        Ok(Self { pair })
    }

    /// Reads `data_dir/vapid.key`.
    pub fn load(data_dir: &Path) -> Result<Self, NodeKeyError> {
        let path = data_dir.join(VAPID_KEY_FILE);
        let bytes = read_private(&path)?;
        if bytes.len() != SCALAR_BYTES {
            return Err(invalid(&path, "not a 32-byte P-256 key"));
        }
        let pair = ES256KeyPair::from_bytes(&bytes).map_err(|error| invalid(&path, error))?;
        Ok(Self { pair })
    }

    /// Loads the key, creating it first if the data dir has none (made before push).
    pub fn load_or_create(data_dir: &Path) -> Result<Self, NodeKeyError> {
        if data_dir.join(VAPID_KEY_FILE).exists() {
            Self::load(data_dir)
        } else {
            tracing::info!("no VAPID key in the data dir; creating {VAPID_KEY_FILE}");
            Self::create(data_dir)
        }
    }

    /// The public key, uncompressed SEC1 (65 bytes), as devices and push services see it.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().public_key().to_bytes_uncompressed()
    }

    /// The `Authorization` header for a push to `endpoint`: a token for the endpoint's
    /// origin (with its port unless it is the scheme's default), signed by this key.
    pub fn authorization(
        &self,
        endpoint: &Uri,
        contact: &str,
    ) -> Result<String, web_push_native::jwt_simple::Error> {
        let claims = Claims::create(Duration::from_hours(TOKEN_HOURS))
            .with_audience(origin(endpoint))
            .with_subject(contact);
        let token = self.pair.sign(claims)?;
        let key = Base64UrlUnpadded::encode_string(&self.public_key());
        Ok(format!("vapid t={token}, k={key}"))
    }

    /// Checks a token made by [`VapidKey::authorization`] (tests).
    #[cfg(test)]
    fn verifies(&self, token: &str) -> bool {
        self.pair
            .public_key()
            .verify_token::<web_push_native::jwt_simple::prelude::NoCustomClaims>(token, None)
            .is_ok()
    }
}

/// `scheme://host[:port]` of `endpoint`.
pub fn origin(endpoint: &Uri) -> String {
    let scheme = endpoint.scheme_str().unwrap_or("https");
    let host = endpoint.host().unwrap_or_default();
    let default_port = if scheme == "http" { 80 } else { 443 };
    match endpoint.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_key_is_private_round_trips_and_signs_for_the_origin() {
        let dir = tempfile::tempdir().unwrap();
        let created = VapidKey::create(dir.path()).unwrap();
        let path = dir.path().join(VAPID_KEY_FILE);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let loaded = VapidKey::load_or_create(dir.path()).unwrap();
        assert_eq!(loaded.public_key(), created.public_key());
        assert_eq!(loaded.public_key().len(), 65);
        assert!(VapidKey::create(dir.path()).is_err(), "never overwritten");
        assert_eq!(
            format!("{loaded:?}"),
            "VapidKey { .. }",
            "Debug shows no key"
        );
        let uri: Uri = "http://127.0.0.1:8080/push/abc".parse().unwrap();
        assert_eq!(origin(&uri), "http://127.0.0.1:8080");
        let https: Uri = "https://push.example.com:443/x".parse().unwrap();
        assert_eq!(origin(&https), "https://push.example.com");
        let header = loaded.authorization(&uri, "mailto:a@b.example").unwrap();
        let token = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split(", k=").next())
            .unwrap();
        assert!(created.verifies(token));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            VapidKey::load(dir.path()),
            Err(NodeKeyError::InsecurePermissions { .. })
        ));
    }
}
