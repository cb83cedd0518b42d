//! The device's Olm account: its curve25519 identity key, one-time and fallback keys.

use std::fmt;

use tidings_protocol::{
    IdentityKey, KeyBundle, SignedPreKey, UserId, content::SenderKeys,
    limits::MAX_ONE_TIME_KEYS_PER_UPLOAD,
};
use vodozemac::{
    Curve25519PublicKey,
    olm::{Account, AccountPickle, InboundCreationResult, PreKeyMessage, SessionCreationError},
};

use super::{OlmError, OlmSession, SESSION_CONFIG, check_pickle_len};
use crate::{Identity, store_key::StoreKey};

/// A device's Olm account (vodozemac): the long-term curve25519 identity key and the
/// private halves of its published one-time and fallback keys.
///
/// Persist it (see [`OlmAccount::pickle`]) after generating keys and after every inbound
/// session, which consumes a one-time key.
pub struct OlmAccount {
    account: Account,
}

impl OlmAccount {
    /// A new account with a fresh identity key and no one-time keys.
    pub fn new() -> Self {
        Self {
            account: Account::new(),
        }
    }

    /// The account's curve25519 identity key.
    pub fn curve25519_key(&self) -> [u8; 32] {
        self.account.curve25519_key().to_bytes()
    }

    /// The identity key, signed by `identity`'s device key.
    pub fn identity_key(&self, identity: &Identity) -> IdentityKey {
        identity.sign_identity_key(self.curve25519_key())
    }

    /// What a pre-key message carries so the recipient can check who opens the session.
    pub fn sender_keys(&self, identity: &Identity) -> SenderKeys {
        SenderKeys {
            cert: identity.cert().clone(),
            identity: self.identity_key(identity),
        }
    }

    /// Generates `count` one-time keys (at most
    /// [`MAX_ONE_TIME_KEYS_PER_UPLOAD`], one upload's worth), signs them with the
    /// device key and marks them published.
    ///
    /// vodozemac keeps the private halves of at most 5,000 one-time keys and forgets the oldest
    /// beyond that.
    pub fn generate_one_time_keys(
        &mut self,
        identity: &Identity,
        count: usize,
    ) -> Vec<SignedPreKey> {
        let created = self
            .account
            .generate_one_time_keys(count.min(MAX_ONE_TIME_KEYS_PER_UPLOAD))
            .created;
        self.account.mark_keys_as_published();
        created
            .iter()
            .map(|key| identity.sign_pre_key(key.to_bytes(), false))
            .collect()
    }

    /// Replaces the fallback key (handed out when one-time keys run out), signs the new one with
    /// the device key and marks it published. The previous fallback key still answers
    /// sessions until the next rotation.
    pub fn rotate_fallback_key(&mut self, identity: &Identity) -> SignedPreKey {
        self.account.generate_fallback_key();
        let fresh = self.account.fallback_key().into_values().next();
        self.account.mark_keys_as_published();
        #[allow(
            clippy::expect_used,
            reason = "vodozemac always reports the fallback key it just generated as unpublished"
        )]
        let key = fresh.expect("a freshly generated fallback key is unpublished");
        identity.sign_pre_key(key.to_bytes(), true)
    }

    /// Opens a session to the device described by `bundle`, after checking that every part of
    /// the bundle is signed and belongs to one device of `peer_user`.
    pub fn create_outbound_session(
        &self,
        peer_user: &UserId,
        bundle: &KeyBundle,
    ) -> Result<OlmSession, OlmError> {
        bundle
            .verify_for(peer_user)
            .map_err(OlmError::InvalidBundle)?;
        let session = self
            .account
            .create_outbound_session(
                SESSION_CONFIG,
                Curve25519PublicKey::from_bytes(bundle.identity.curve25519),
                Curve25519PublicKey::from_bytes(bundle.prekey.curve25519),
            )
            .map_err(OlmError::OutboundSession)?;
        Ok(OlmSession::new(session, bundle.identity.curve25519))
    }

    /// Creates the session a pre-key message opens, consuming the one-time key it names.
    pub(super) fn create_inbound_session(
        &mut self,
        peer_identity_key: [u8; 32],
        message: &PreKeyMessage,
    ) -> Result<(OlmSession, Vec<u8>), OlmError> {
        let InboundCreationResult { session, plaintext } = self
            .account
            .create_inbound_session(
                SESSION_CONFIG,
                Curve25519PublicKey::from_bytes(peer_identity_key),
                message,
            )
            .map_err(|error| match error {
                SessionCreationError::MissingOneTimeKey(_) => OlmError::UnknownOneTimeKey,
                other => OlmError::InboundSession(other),
            })?;
        Ok((OlmSession::new(session, peer_identity_key), plaintext))
    }

    /// The account, encrypted under `key` (vodozemac pickle format).
    pub fn pickle(&self, key: &StoreKey) -> String {
        self.account.pickle().encrypt(key.secret())
    }

    /// Restores an account from [`OlmAccount::pickle`]'s output.
    pub fn unpickle(pickle: &str, key: &StoreKey) -> Result<Self, OlmError> {
        check_pickle_len(pickle)?;
        let pickle =
            AccountPickle::from_encrypted(pickle, key.secret()).map_err(OlmError::Pickle)?;
        Ok(Self {
            account: Account::from_pickle(pickle),
        })
    }
}

impl Default for OlmAccount {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OlmAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OlmAccount")
            .field("curve25519", &self.account.curve25519_key().to_base64())
            .finish_non_exhaustive()
    }
}
