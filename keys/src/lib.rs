//! Keys and end-to-end sessions of a Tidings device: the account and device keys
//! ([`Identity`]; a linked device holds no account key), their key file on disk, the account
//! export, linking a new device ([`PendingLink`], [`link::seal_package`]), and pairwise Olm
//! sessions from `vodozemac` ([`OlmAccount`], [`OlmSession`], [`PeerSessions`]).
//!
//! No networking and no async: callers move the bytes. No secret leaves this crate: an
//! [`Identity`] signs as its device or account, its [`StoreKey`] only feeds the pickle
//! functions, and the device's libp2p keypair is handed straight to the transport. The
//! `test-utils` feature exposes the raw signing keys to tests that forge. Secret-holding types
//! zeroize their secrets on drop and print redacted in `Debug`.
//!
//! ```
//! use tidings_keys::{Identity, OlmAccount, PeerSessions};
//! use tidings_protocol::KeyBundle;
//!
//! // Two devices, each with an Olm account.
//! let alice = Identity::generate();
//! let bob = Identity::generate();
//! let alice_olm = OlmAccount::new();
//! let mut bob_olm = OlmAccount::new();
//!
//! // Bob publishes a one-time key; Alice claims it as part of a bundle.
//! let prekey = bob_olm.generate_one_time_keys(&bob, 1).remove(0);
//! let bundle = KeyBundle {
//!     cert: bob.cert().clone(),
//!     identity: bob_olm.identity_key(&bob),
//!     prekey,
//! };
//!
//! // Alice opens a session and sends; Bob answers the pre-key message.
//! let mut to_bob = PeerSessions::new();
//! to_bob.add(alice_olm.create_outbound_session(&bob.user_id(), &bundle)?);
//! let body = to_bob
//!     .encrypt(b"hi Bob", &alice_olm.sender_keys(&alice))
//!     .ok_or("no session")??;
//!
//! let mut from_alice = PeerSessions::new();
//! let plaintext = from_alice.decrypt(&mut bob_olm, &alice.address(), &body)?;
//! assert_eq!(plaintext, b"hi Bob");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod identity;
pub mod keyfile;
pub mod link;
pub mod media;
pub mod megolm;
pub mod olm;
pub mod profile;
mod store_key;

pub use identity::{ExportError, Identity, NoAccountKey};
pub use keyfile::{KeyFileError, KeyFileInfo};
pub use link::{LinkError, PendingLink};
pub use megolm::{GroupInbound, GroupOutbound, MegolmError};
pub use olm::{OlmAccount, OlmError, OlmSession, PeerSessions, SenderKeysError};
pub use profile::{ProfileError, ProfileKey};
pub use store_key::StoreKey;
