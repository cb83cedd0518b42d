//! Signatures a sender who holds its device key can make so that strict verification (what
//! clients run, `RawEnvelope::open`) refuses them while the cofactorless batch equation of
//! `ed25519_dalek::verify_batch` holds: a nonce point `r·B + T` with a torsion component `T`
//! (the batch multiplies it by the envelope's coefficient, which kills it once in eight tries;
//! the coefficients are derived from the batch, so the sender grinds until they do) or a
//! small-order nonce point (`r = 0`: the batch holds every time). A relay must refuse them
//! exactly as clients do, or it stores and forwards what every recipient drops.
//!
//! The forger signs as Ed25519 does (`s = r + SHA-512(R || A || M)·a`) with a secret scalar it
//! holds, through curve25519-dalek directly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use curve25519_dalek::{
    constants::{ED25519_BASEPOINT_TABLE, EIGHT_TORSION},
    edwards::EdwardsPoint,
    scalar::Scalar,
    traits::Identity,
};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};
use tidings_protocol::{
    Address, DeviceId, Envelope, EnvelopeError, EnvelopeId, Kind, RawEnvelope, Recipient, UserId,
    codec,
    envelope::{ENVELOPE_MAGIC, verify_batch},
    fuzzing,
};

/// The group order ℓ, little-endian: `s + ℓ` satisfies every equation `s` does, and is not a
/// canonical scalar.
const ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Seeds of the `envelope` fuzz target that this file writes.
const TORSION_SEED: &str = "regression-torsion-nonce";
const IDENTITY_SEED: &str = "regression-identity-nonce";

/// At most this many envelopes are tried while grinding (each passes with probability 1/8).
const GRIND_LIMIT: u64 = 512;

fn recipient() -> Recipient {
    Recipient::Direct(Address {
        user: UserId::from_bytes([0x21; 32]),
        device: DeviceId::from_bytes([0x22; 32]),
    })
}

/// A device key held as its secret scalar, so it can sign with any nonce point it likes.
struct Forger {
    secret: Scalar,
    address: Address,
}

impl Forger {
    fn new(seed: &[u8]) -> Self {
        Self::with_key_offset(seed, EdwardsPoint::identity())
    }

    /// A device key `a·B + offset`: a torsion offset makes a mixed-order key, which is not a
    /// weak key and which strict verification takes whenever its equation holds exactly.
    fn with_key_offset(seed: &[u8], offset: EdwardsPoint) -> Self {
        let secret = Scalar::from_bytes_mod_order_wide(&Sha512::digest(seed).into());
        let public = ED25519_BASEPOINT_TABLE * &secret + offset;
        let address = Address {
            user: UserId::from_bytes([0x11; 32]),
            device: DeviceId::from_bytes(public.compress().to_bytes()),
        };
        Self { secret, address }
    }

    fn envelope(&self, n: u64) -> Envelope {
        let mut id = [0x5a; 16];
        id[..8].copy_from_slice(&n.to_le_bytes());
        Envelope {
            id: EnvelopeId::from_bytes(id),
            sender: self.address,
            recipient: recipient(),
            sent_at_ms: 1_700_000_000_000,
            kind: Kind::Message,
            body: b"dropped by every client".to_vec(),
            blobs: Default::default(),
        }
    }

    /// A nonce derived from the secret and the envelope, as Ed25519 derives its own.
    fn nonce(&self, envelope: &Envelope) -> Scalar {
        let mut hash = Sha512::new();
        hash.update(self.secret.as_bytes());
        hash.update(codec::encode(envelope));
        Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
    }

    /// Signs with nonce `r` and `nonce_point` as the signature's R (honest: the encoding of
    /// `r·B`), returning the wire bytes and `s`.
    fn sign(&self, envelope: &Envelope, r: Scalar, nonce_point: [u8; 32]) -> (Vec<u8>, Scalar) {
        let mut bytes = ENVELOPE_MAGIC.to_vec();
        codec::encode_into(envelope, &mut bytes);
        let mut hash = Sha512::new();
        hash.update(nonce_point);
        hash.update(self.address.device.as_bytes());
        hash.update(&bytes);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        let s = r + k * self.secret;
        bytes.extend_from_slice(&nonce_point);
        bytes.extend_from_slice(s.as_bytes());
        (bytes, s)
    }

    /// Signed with the nonce point `r·B + torsion` (an honest signature for the identity).
    fn torsioned(&self, envelope: &Envelope, torsion: &EdwardsPoint) -> RawEnvelope {
        let r = self.nonce(envelope);
        let point = ED25519_BASEPOINT_TABLE * &r + torsion;
        RawEnvelope::from_bytes(self.sign(envelope, r, point.compress().to_bytes()).0)
    }

    /// Signed with nonce 0 and `nonce_point` (some encoding of a small-order point) as R.
    fn small_order_nonce(&self, envelope: &Envelope, nonce_point: [u8; 32]) -> RawEnvelope {
        RawEnvelope::from_bytes(self.sign(envelope, Scalar::ZERO, nonce_point).0)
    }

    /// An honest signature whose `s` is replaced by `s + ℓ`.
    fn unreduced_s(&self, envelope: &Envelope) -> RawEnvelope {
        let r = self.nonce(envelope);
        let point = (ED25519_BASEPOINT_TABLE * &r).compress().to_bytes();
        let (mut bytes, s) = self.sign(envelope, r, point);
        let at = bytes.len() - 32;
        let mut carry = 0u16;
        for (i, (a, b)) in s.as_bytes().iter().zip(ORDER).enumerate() {
            let sum = u16::from(*a) + u16::from(b) + carry;
            bytes[at + i] = sum as u8;
            carry = sum >> 8;
        }
        RawEnvelope::from_bytes(bytes)
    }
}

/// Envelopes signed by an honest device with ed25519-dalek.
fn honest(count: u64) -> Vec<(RawEnvelope, Envelope)> {
    let key = SigningKey::from_bytes(&[0x33; 32]);
    let sender = Address {
        user: UserId::from_bytes([0x34; 32]),
        device: DeviceId::from(&key.verifying_key()),
    };
    (0..count)
        .map(|n| {
            let envelope = Envelope {
                id: EnvelopeId::from_bytes([n as u8; 16]),
                sender,
                recipient: recipient(),
                sent_at_ms: 1_700_000_000_000,
                kind: Kind::Message,
                body: vec![n as u8; 100],
                blobs: Default::default(),
            };
            (envelope.sign(&key), envelope)
        })
        .collect()
}

/// What relays ran before: the cofactorless batch equation with coefficients derived from the
/// batch (`ed25519_dalek::verify_batch`).
fn batch_equation_holds(raws: &[&RawEnvelope]) -> bool {
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    let mut keys = Vec::new();
    for raw in raws {
        let bytes = raw.as_bytes();
        let (message, signature) = bytes.split_at(bytes.len() - 64);
        let sender = raw.decode_unverified().unwrap().sender.device;
        messages.push(message);
        signatures.push(Signature::from_slice(signature).unwrap());
        keys.push(VerifyingKey::from_bytes(sender.as_bytes()).unwrap());
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// Verdicts of `verify_batch` over `raws`, as accepted or not.
fn batch_verdicts(raws: &[&RawEnvelope]) -> Vec<bool> {
    let decoded: Vec<Envelope> = raws
        .iter()
        .map(|raw| raw.decode_unverified().unwrap())
        .collect();
    let items: Vec<(&RawEnvelope, &Envelope)> = raws.iter().copied().zip(&decoded).collect();
    verify_batch(&items).iter().map(Result::is_ok).collect()
}

/// The first envelope of `forger`, signed with a torsioned nonce point, for which the batch
/// equation holds over `before ++ [it] ++ after`.
fn grind(
    forger: &Forger,
    torsion: &EdwardsPoint,
    before: &[&RawEnvelope],
    after: &[&RawEnvelope],
) -> RawEnvelope {
    (0..GRIND_LIMIT)
        .map(|n| forger.torsioned(&forger.envelope(n), torsion))
        .find(|forged| {
            let batch: Vec<&RawEnvelope> = before
                .iter()
                .copied()
                .chain([forged])
                .chain(after.iter().copied())
                .collect();
            batch_equation_holds(&batch)
        })
        .expect("one nonce in eight makes the batch equation hold")
}

#[test]
fn a_torsioned_nonce_the_batch_equation_takes_is_refused_among_honest_envelopes() {
    let honest = honest(3);
    let forger = Forger::new(b"mallory");
    // T of order 8: the batch equation holds when the coefficient is a multiple of 8.
    let forged = grind(
        &forger,
        &EIGHT_TORSION[1],
        &[&honest[0].0, &honest[1].0],
        &[&honest[2].0],
    );
    assert_eq!(forged.open(), Err(EnvelopeError::BadSignature));

    let envelope = forged.decode_unverified().unwrap();
    let items = [
        (&honest[0].0, &honest[0].1),
        (&honest[1].0, &honest[1].1),
        (&forged, &envelope),
        (&honest[2].0, &honest[2].1),
    ];
    assert_eq!(
        verify_batch(&items),
        vec![Ok(()), Ok(()), Err(EnvelopeError::BadSignature), Ok(())]
    );
}

#[test]
fn a_small_order_nonce_the_batch_equation_always_takes_is_refused() {
    let honest = honest(2);
    let forger = Forger::new(b"mallory");
    let identity = EdwardsPoint::identity().compress().to_bytes();
    let forged = forger.small_order_nonce(&forger.envelope(1), identity);
    assert!(batch_equation_holds(&[&honest[0].0, &forged, &honest[1].0]));
    assert_eq!(forged.open(), Err(EnvelopeError::BadSignature));
    assert_eq!(
        batch_verdicts(&[&honest[0].0, &forged, &honest[1].0]),
        [true, false, true]
    );
}

/// Every kind of signature above, and some that strict verification takes (mixed-order keys),
/// gets the same verdict from `verify_batch` (alone, together, among honest envelopes) as from
/// `RawEnvelope::open`.
#[test]
fn batch_verdicts_match_strict_verification_on_edge_signatures() {
    let forger = Forger::new(b"edges");
    let mut raws = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        forger.envelope(n)
    };
    for torsion in EIGHT_TORSION {
        for _ in 0..3 {
            raws.push(forger.torsioned(&next(), &torsion));
        }
    }
    let mut identity_high_y = [0xff; 32]; // y = p + 1: a non-canonical encoding of the identity
    identity_high_y[0] = 0xee;
    identity_high_y[31] = 0x7f;
    let mut negative_zero = [0; 32]; // the identity with the sign bit of x set
    negative_zero[0] = 1;
    negative_zero[31] = 0x80;
    for point in EIGHT_TORSION.map(|point| point.compress().to_bytes()) {
        raws.push(forger.small_order_nonce(&next(), point));
    }
    raws.push(forger.small_order_nonce(&next(), identity_high_y));
    raws.push(forger.small_order_nonce(&next(), negative_zero));
    raws.push(forger.unreduced_s(&next()));
    // Mixed-order keys: `s·B - k·A` is `r·B - k·T`, which strict verification takes when
    // `k·T` vanishes (k even for T of order 2, a multiple of 8 for order 8).
    for (seed, torsion) in [
        (&b"order 2"[..], EIGHT_TORSION[4]),
        (b"order 8", EIGHT_TORSION[1]),
    ] {
        let mixed = Forger::with_key_offset(seed, torsion);
        for m in 0..24 {
            raws.push(mixed.torsioned(&mixed.envelope(m), &EdwardsPoint::identity()));
        }
    }
    let strict: Vec<bool> = raws.iter().map(|raw| raw.open().is_ok()).collect();
    assert!(strict.iter().any(|ok| *ok) && strict.iter().any(|ok| !ok));

    for (raw, strict) in raws.iter().zip(&strict) {
        assert_eq!(batch_verdicts(&[raw]), [*strict], "alone");
    }
    let all: Vec<&RawEnvelope> = raws.iter().collect();
    assert_eq!(batch_verdicts(&all), strict, "together");
    let honest = honest(raws.len() as u64);
    let mixed: Vec<&RawEnvelope> = raws
        .iter()
        .zip(&honest)
        .flat_map(|(raw, (good, _))| [raw, good])
        .collect();
    let expected: Vec<bool> = strict.iter().flat_map(|ok| [*ok, true]).collect();
    assert_eq!(batch_verdicts(&mixed), expected, "among honest envelopes");
}

fn seed_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds/envelope")
        .join(name)
}

/// The committed seeds still perform the attack against the old check, and the fuzz check
/// (batch against single verification) holds on them.
#[test]
fn the_fuzz_seeds_are_batch_forgeries_the_envelope_check_refuses() {
    for name in [TORSION_SEED, IDENTITY_SEED] {
        let bytes = std::fs::read(seed_path(name)).unwrap();
        let raw = RawEnvelope::from_bytes(bytes.clone());
        assert!(batch_equation_holds(&[&raw]), "{name}");
        assert_eq!(raw.open(), Err(EnvelopeError::BadSignature), "{name}");
        assert_eq!(batch_verdicts(&[&raw]), [false], "{name}");
        fuzzing::envelope(&bytes);
    }
}

/// Writes the seeds: envelopes for which the batch equation holds alone.
#[test]
#[ignore = "writes fuzz/seeds/envelope; run by hand after changing the envelope format"]
fn write_seeds() {
    let forger = Forger::new(b"fuzz seed");
    let torsioned = grind(&forger, &EIGHT_TORSION[1], &[], &[]);
    std::fs::write(seed_path(TORSION_SEED), torsioned.as_bytes()).unwrap();
    let identity = EdwardsPoint::identity().compress().to_bytes();
    let small = forger.small_order_nonce(&forger.envelope(0), identity);
    std::fs::write(seed_path(IDENTITY_SEED), small.as_bytes()).unwrap();
}
