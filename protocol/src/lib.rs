//! Wire types of Tidings: identifiers, envelopes, signed key statements, the client protocol,
//! end-to-end content and contact cards, with bounded CBOR codecs and typed decode errors.
//!
//! This crate does no I/O beyond framing bytes on a stream it is handed.
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use tidings_protocol::{Address, DeviceId, Envelope, EnvelopeId, Kind, Recipient, UserId};
//!
//! let account = SigningKey::from_bytes(&[1; 32]);
//! let device = SigningKey::from_bytes(&[2; 32]);
//! let me = Address {
//!     user: UserId::from(&account.verifying_key()),
//!     device: DeviceId::from(&device.verifying_key()),
//! };
//! let envelope = Envelope {
//!     id: EnvelopeId::random(),
//!     sender: me,
//!     recipient: Recipient::Direct(me),
//!     sent_at_ms: 0,
//!     kind: Kind::Message,
//!     body: b"ciphertext".to_vec(),
//!     blobs: Default::default(),
//! };
//! let raw = envelope.sign(&device);
//! assert_eq!(raw.open().unwrap(), envelope);
//! ```

pub mod blob;
pub mod card;
pub mod certs;
pub mod client;
pub mod codec;
pub mod content;
pub mod devices;
pub mod envelope;
pub mod errors;
pub mod federation;
pub mod framing;
#[cfg(feature = "test-utils")]
pub mod fuzzing;
pub mod group;
pub mod home;
pub mod ids;
pub mod limits;
pub mod link;
pub mod mailbox;
pub mod media;
pub mod mux;
pub mod presence;
pub mod profile;
pub mod push;
pub mod status;
#[cfg(feature = "store")]
pub mod store;

pub use blob::{BlobAnswer, BlobData, BlobHasher, BlobId, BlobRef, BlobRequest};
pub use card::ContactCard;
pub use certs::{CertError, DeviceCert, IdentityKey, KeyBundle, SignedPreKey};
pub use codec::{BoundedVec, DecodeError};
pub use devices::{DeviceEntry, DeviceList, DeviceListError, SignedDeviceList};
pub use envelope::{Envelope, EnvelopeError, Kind, RawEnvelope, Recipient};
pub use errors::{ErrorAnswer, ErrorCode};
pub use home::{HomeError, HomeRecord};
pub use ids::{Address, DeviceId, EnvelopeId, GroupId, IdError, UserId};
pub use link::{LinkCode, LinkCodeError, LinkPackage, LinkPackageError, LinkSecret};
pub use mailbox::{Bounce, MailboxItem};

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before 1970);
/// in the browser `Date.now()` (std's `SystemTime::now` panics there).
pub fn now_ms() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    use std::time::{SystemTime, UNIX_EPOCH};
    #[cfg(target_arch = "wasm32")]
    use web_time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}
