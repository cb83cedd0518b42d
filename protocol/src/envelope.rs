//! Envelopes: the signed unit of delivery, and their byte layout.
//!
//! An envelope travels as one byte string: `MAGIC || CBOR(Envelope) || signature`, where the
//! sender device's ed25519 signature covers every byte before it. Relays store and forward
//! these bytes unchanged, so verification never depends on re-encoding.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    blob::{BlobRef, MAX_BLOBS_PER_ENVELOPE},
    codec::{self, BoundedVec, DecodeError},
    ids::{Address, DeviceId, EnvelopeId, GroupId, UserId},
    limits::MAX_ENVELOPE_BYTES,
};

/// Magic and format version that start every envelope; also the signature's domain separator.
pub const ENVELOPE_MAGIC: &[u8; 4] = b"TDE1";

const SIGNATURE_LEN: usize = 64;

/// Who an envelope is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recipient {
    /// One device of one user (pairwise Olm ciphertext).
    #[serde(rename = "d")]
    Direct(Address),
    /// Every member of a group (Megolm ciphertext, fanned out by the sender's home relay).
    #[serde(rename = "g")]
    Group(GroupId),
}

impl Recipient {
    /// The user a direct envelope is for.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Recipient::Direct(address) => Some(address.user),
            Recipient::Group(_) => None,
        }
    }
}

/// What an envelope carries; relays route on it but never see the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A chat message.
    #[serde(rename = "m")]
    Message,
    /// A delivered or read receipt.
    #[serde(rename = "r")]
    Receipt,
    /// A typing notice: ephemeral, never stored.
    #[serde(rename = "t")]
    Typing,
    /// A session key for a group, sent pairwise.
    #[serde(rename = "k")]
    KeyShare,
    /// A change to a group's descriptor.
    #[serde(rename = "c")]
    GroupControl,
    /// A kind this version does not know; stored and forwarded like a message.
    #[serde(other)]
    Other,
}

impl Kind {
    /// Whether relays must never store this kind (it is dropped if the recipient is offline).
    pub fn is_ephemeral(self) -> bool {
        matches!(self, Kind::Typing)
    }
}

/// The signed content of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id, chosen by the sender.
    #[serde(rename = "i")]
    pub id: EnvelopeId,
    /// The sending device.
    #[serde(rename = "f")]
    pub sender: Address,
    /// Who it is for.
    #[serde(rename = "r")]
    pub recipient: Recipient,
    /// When the sender sent it, in milliseconds since the Unix epoch (sender's clock).
    #[serde(rename = "t")]
    pub sent_at_ms: u64,
    /// What it carries.
    #[serde(rename = "k")]
    pub kind: Kind,
    /// End-to-end encrypted body, opaque to relays.
    #[serde(rename = "b", with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The media blobs the content refers to (ids, where, sizes; never their keys), so
    /// relays keep each blob while a stored envelope names it and can fetch it for their
    /// users. Empty for everything but media (and left out of the encoding then).
    #[serde(rename = "a", default, skip_serializing_if = "BoundedVec::is_empty")]
    pub blobs: BoundedVec<BlobRef, MAX_BLOBS_PER_ENVELOPE>,
}

/// Why an envelope was not accepted as authentic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes do not decode as an envelope.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The sender's device id is not a valid ed25519 key, or is a weak (small-order) one.
    #[error("sender device key is invalid")]
    BadSenderKey,
    /// The signature does not match the sender device's key.
    #[error("signature does not verify")]
    BadSignature,
}

impl Envelope {
    /// Signs the envelope with the sender device's key, producing its wire bytes.
    ///
    /// The caller must make `sender.device` the public half of `device_key`.
    pub fn sign(&self, device_key: &SigningKey) -> RawEnvelope {
        let mut bytes = Vec::with_capacity(ENVELOPE_MAGIC.len() + self.body.len() + 160);
        bytes.extend_from_slice(ENVELOPE_MAGIC);
        codec::encode_into(self, &mut bytes);
        let signature = device_key.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        RawEnvelope(bytes)
    }
}

/// An envelope exactly as it travels: magic, CBOR content, signature.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawEnvelope(#[serde(with = "serde_bytes")] Vec<u8>);

impl std::fmt::Debug for RawEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawEnvelope({} bytes)", self.0.len())
    }
}

impl RawEnvelope {
    /// Wraps bytes received from the wire or read from storage, without checking them.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the envelope, returning its wire bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length on the wire.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the byte string is empty (never true for a valid envelope).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The signed part (magic and content) and the signature, checking size and magic.
    fn split(&self) -> Result<(&[u8], &[u8]), DecodeError> {
        let len = self.0.len();
        if len > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLarge {
                len,
                max: MAX_ENVELOPE_BYTES,
            });
        }
        if len < ENVELOPE_MAGIC.len() + SIGNATURE_LEN || !self.0.starts_with(ENVELOPE_MAGIC) {
            return Err(DecodeError::BadMagic);
        }
        Ok(self.0.split_at(len - SIGNATURE_LEN))
    }

    /// Decodes the content without checking the signature.
    ///
    /// Use it where the signature was checked before (our own storage), or together with
    /// [`verify_batch`] / [`RawEnvelope::verify_with`].
    pub fn decode_unverified(&self) -> Result<Envelope, DecodeError> {
        let (signed, _) = self.split()?;
        let envelope: Envelope =
            codec::decode(&signed[ENVELOPE_MAGIC.len()..], MAX_ENVELOPE_BYTES)?;
        for blob in envelope.blobs.iter() {
            blob.check()?;
        }
        Ok(envelope)
    }

    /// Checks the signature against a key the caller already trusts for this sender.
    pub fn verify_with(&self, key: &VerifyingKey) -> Result<(), EnvelopeError> {
        let (signed, signature) = self.split()?;
        let signature =
            Signature::from_slice(signature).map_err(|_| EnvelopeError::BadSignature)?;
        key.verify_strict(signed, &signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }

    /// Decodes the content and verifies the signature with the sender device named inside.
    pub fn open(&self) -> Result<Envelope, EnvelopeError> {
        let envelope = self.decode_unverified()?;
        let key = sender_key(&envelope.sender.device)?;
        self.verify_with(&key)?;
        Ok(envelope)
    }
}

fn sender_key(device: &DeviceId) -> Result<VerifyingKey, EnvelopeError> {
    let key = device
        .verifying_key()
        .map_err(|_| EnvelopeError::BadSenderKey)?;
    // A small-order key satisfies the batch equation for every message with a trivial
    // signature; `verify_strict` refuses it, `ed25519_dalek::verify_batch` does not.
    if key.is_weak() {
        return Err(EnvelopeError::BadSenderKey);
    }
    Ok(key)
}

/// A sender device's key, decompressed and checked once: a relay keeps one per client
/// session, so each envelope the device sends costs a signature check and no more.
#[derive(Debug, Clone)]
pub struct SenderKey {
    device: DeviceId,
    key: VerifyingKey,
}

impl SenderKey {
    /// The key of `device`, if it is one signatures can be checked against.
    pub fn of(device: DeviceId) -> Result<Self, EnvelopeError> {
        Ok(Self {
            device,
            key: sender_key(&device)?,
        })
    }
}

/// Verifies many envelopes' signatures, each against the device named inside it, with
/// exactly the verdicts of [`RawEnvelope::open`]: one result per input, in order.
///
/// Every signature is checked strictly (`ed25519_dalek`'s `verify_strict`), each sender's key
/// decompressed once per call. A batch equation `Σ zᵢ·(Rᵢ + kᵢ·Aᵢ - sᵢ·B) = 0` would be
/// cheaper but cannot agree with strict verification: it does not see a torsion component of
/// `Rᵢ` that `zᵢ` cancels (a key holder grinds its message until it does, or signs with a
/// small-order `R`, which the equation takes every time), so relays would store and forward
/// envelopes every client drops (`protocol/tests/nonce_forgery.rs` performs both).
pub fn verify_batch(items: &[(&RawEnvelope, &Envelope)]) -> Vec<Result<(), EnvelopeError>> {
    verify_batch_knowing(items, None)
}

/// As [`verify_batch`], with the key of the device most envelopes come from already at hand.
pub fn verify_batch_knowing(
    items: &[(&RawEnvelope, &Envelope)],
    known: Option<&SenderKey>,
) -> Vec<Result<(), EnvelopeError>> {
    let mut keys: Vec<(DeviceId, Result<VerifyingKey, EnvelopeError>)> = known
        .map(|known| (known.device, Ok(known.key)))
        .into_iter()
        .collect();
    items
        .iter()
        .map(|(raw, envelope)| {
            let device = envelope.sender.device;
            let key = match keys.iter().find(|(known, _)| *known == device) {
                Some((_, key)) => key.clone(),
                None => {
                    let key = sender_key(&device);
                    keys.push((device, key.clone()));
                    key
                }
            };
            raw.verify_with(&key?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> (SigningKey, Address) {
        let account = SigningKey::from_bytes(&[1; 32]);
        let device = SigningKey::from_bytes(&[2; 32]);
        let address = Address {
            user: UserId::from(&account.verifying_key()),
            device: DeviceId::from(&device.verifying_key()),
        };
        (device, address)
    }

    fn envelope(sender: Address, body: &[u8]) -> Envelope {
        Envelope {
            id: EnvelopeId::random(),
            sender,
            recipient: Recipient::Direct(sender),
            sent_at_ms: 1,
            kind: Kind::Message,
            body: body.to_vec(),
            blobs: Default::default(),
        }
    }

    #[test]
    fn blob_references_sign_and_open_and_are_absent_from_other_envelopes() {
        let (key, address) = device();
        let plain = envelope(address, b"x");
        let bytes = codec::encode(&plain);
        assert!(
            !bytes.windows(2).any(|pair| pair == [0x61, b'a']),
            "no \"a\" key"
        );
        let mut media = envelope(address, b"x");
        let blob = BlobRef {
            id: crate::blob::BlobId::of(b"ciphertext"),
            relay: "12D3KooWrelay".into(),
            size: 10,
        };
        media.blobs = BoundedVec::new(vec![blob.clone()]).unwrap_or_default();
        let raw = media.sign(&key);
        assert_eq!(
            raw.open().map(|opened| opened.blobs.to_vec()),
            Ok(vec![blob.clone()])
        );
        let mut long = media.clone();
        long.blobs = BoundedVec::new(vec![BlobRef {
            relay: "r".repeat(crate::blob::MAX_BLOB_RELAY_LEN + 1),
            ..blob
        }])
        .unwrap_or_default();
        assert!(long.sign(&key).open().is_err(), "a relay id over its bound");
    }

    #[test]
    fn signed_envelope_opens_and_tampering_is_caught() {
        let (key, address) = device();
        let original = envelope(address, b"ciphertext");
        let raw = original.sign(&key);
        assert_eq!(raw.open(), Ok(original));

        let mut tampered = raw.clone().into_bytes();
        let body_at = tampered.len() - 70;
        tampered[body_at] ^= 1;
        assert!(RawEnvelope::from_bytes(tampered).open().is_err());
    }

    #[test]
    fn batch_verification_points_at_the_bad_one() {
        let (key, address) = device();
        let good: Vec<RawEnvelope> = (0..4).map(|_| envelope(address, b"x").sign(&key)).collect();
        let mut bad = good[2].clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let bad = RawEnvelope::from_bytes(bad);
        let raws = [&good[0], &good[1], &bad, &good[3]];
        let decoded: Vec<Envelope> = raws
            .iter()
            .map(|r| r.decode_unverified().unwrap())
            .collect();
        let items: Vec<_> = raws.iter().copied().zip(decoded.iter()).collect();
        let results = verify_batch(&items);
        assert_eq!(results.len(), 4);
        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        assert_eq!(results[2], Err(EnvelopeError::BadSignature));
    }

    #[test]
    fn a_weak_sender_key_is_refused_in_a_batch_too() {
        // Caught by the `envelope` fuzz check, batch against single verification (seed
        // `fuzz/seeds/envelope/weak-key-forgery`): the identity point as device key, and
        // (identity point, 0) as signature.
        let (_, address) = device();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = envelope(address, b"forged");
        forged.sender.device = DeviceId::from_bytes(identity);
        let mut bytes = ENVELOPE_MAGIC.to_vec();
        codec::encode_into(&forged, &mut bytes);
        bytes.extend_from_slice(&identity);
        bytes.extend_from_slice(&[0; 32]);
        let raw = RawEnvelope::from_bytes(bytes);
        assert_eq!(raw.open(), Err(EnvelopeError::BadSenderKey));
        assert_eq!(
            verify_batch(&[(&raw, &forged)]),
            vec![Err(EnvelopeError::BadSenderKey)]
        );
    }

    #[test]
    fn a_known_sender_key_gives_the_verdicts_of_a_plain_batch() {
        let (key, address) = device();
        let other_key = SigningKey::from_bytes(&[3; 32]);
        let other = Address {
            device: DeviceId::from(&other_key.verifying_key()),
            ..address
        };
        let good = envelope(address, b"good");
        let from_other = envelope(other, b"other");
        let mut tampered = envelope(address, b"tampered");
        let raws = [
            good.sign(&key),
            from_other.sign(&other_key),
            // Signed by the other device while naming the known one.
            tampered.sign(&other_key),
        ];
        tampered.body.clear();
        let items: Vec<(&RawEnvelope, &Envelope)> = vec![
            (&raws[0], &good),
            (&raws[1], &from_other),
            (&raws[2], &tampered),
        ];
        let known = SenderKey::of(address.device).unwrap();
        let verdicts = verify_batch_knowing(&items, Some(&known));
        assert_eq!(verdicts, verify_batch(&items));
        assert_eq!(
            verdicts,
            vec![Ok(()), Ok(()), Err(EnvelopeError::BadSignature)]
        );
    }

    #[test]
    fn oversized_and_short_inputs_are_typed_errors() {
        let big = RawEnvelope::from_bytes(vec![0; MAX_ENVELOPE_BYTES + 1]);
        assert!(matches!(
            big.open(),
            Err(EnvelopeError::Decode(DecodeError::TooLarge { .. }))
        ));
        let short = RawEnvelope::from_bytes(b"TDE1".to_vec());
        assert_eq!(
            short.open(),
            Err(EnvelopeError::Decode(DecodeError::BadMagic))
        );
    }
}
