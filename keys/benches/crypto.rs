//! Micro-benchmarks of the per-message hot paths: envelope signing and verification, and
//! Olm and Megolm encryption and decryption of a 1 KiB message.
//!
//! Run: `cargo bench -p tidings-keys --bench crypto`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark setup fails loudly"
)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tidings_keys::{GroupInbound, GroupOutbound, Identity, OlmAccount, PeerSessions};
use tidings_protocol::{
    Address, DeviceId, Envelope, EnvelopeId, KeyBundle, Kind, RawEnvelope, Recipient, UserId,
    envelope::verify_batch,
};

const BODY: usize = 1024;

fn envelope(from: &Identity) -> Envelope {
    Envelope {
        id: EnvelopeId::random(),
        sender: from.address(),
        recipient: Recipient::Direct(Address {
            user: UserId::from_bytes([7; 32]),
            device: DeviceId::from_bytes([8; 32]),
        }),
        sent_at_ms: 1_700_000_000_000,
        kind: Kind::Message,
        body: vec![0x5a; BODY],
        blobs: Default::default(),
    }
}

fn envelopes(c: &mut Criterion) {
    let alice = Identity::generate();
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    let one = envelope(&alice);
    group.bench_function("sign", |b| b.iter(|| alice.sign_envelope(black_box(&one))));
    let raw = alice.sign_envelope(&one);
    group.bench_function("decode_unverified", |b| {
        b.iter(|| black_box(&raw).decode_unverified().unwrap())
    });
    group.bench_function("open (decode + verify)", |b| {
        b.iter(|| black_box(&raw).open().unwrap())
    });
    let batch: Vec<(RawEnvelope, Envelope)> = (0..256)
        .map(|_| {
            let envelope = envelope(&alice);
            (alice.sign_envelope(&envelope), envelope)
        })
        .collect();
    let items: Vec<(&RawEnvelope, &Envelope)> = batch.iter().map(|(r, e)| (r, e)).collect();
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("verify_batch of 256", |b| {
        b.iter(|| {
            let results = verify_batch(black_box(&items));
            assert!(results.iter().all(Result::is_ok));
        })
    });
    group.finish();
}

struct Device {
    identity: Identity,
    olm: OlmAccount,
}

impl Device {
    fn new() -> Self {
        Self {
            identity: Identity::generate(),
            olm: OlmAccount::new(),
        }
    }
}

/// Alice's session to Bob and Bob's from Alice, opened both ways, so what follows are
/// normal (not pre-key) messages.
struct OlmPair {
    alice: Device,
    bob: Device,
    to_bob: PeerSessions,
    from_alice: PeerSessions,
}

impl OlmPair {
    fn new() -> Self {
        let alice = Device::new();
        let mut bob = Device::new();
        let prekey = bob
            .olm
            .generate_one_time_keys(&bob.identity, 1)
            .pop()
            .unwrap();
        let bundle = KeyBundle {
            cert: bob.identity.cert().clone(),
            identity: bob.olm.identity_key(&bob.identity),
            prekey,
        };
        let mut to_bob = PeerSessions::new();
        to_bob.add(
            alice
                .olm
                .create_outbound_session(&bob.identity.user_id(), &bundle)
                .unwrap(),
        );
        let mut from_alice = PeerSessions::new();
        let alice_keys = alice.olm.sender_keys(&alice.identity);
        let first = to_bob.encrypt(b"hello", &alice_keys).unwrap().unwrap();
        from_alice
            .decrypt(&mut bob.olm, &alice.identity.address(), &first)
            .unwrap();
        let bob_keys = bob.olm.sender_keys(&bob.identity);
        let reply = from_alice.encrypt(b"hi", &bob_keys).unwrap().unwrap();
        to_bob
            .decrypt(&mut OlmAccount::new(), &bob.identity.address(), &reply)
            .unwrap();
        Self {
            alice,
            bob,
            to_bob,
            from_alice,
        }
    }
}

fn olm(c: &mut Criterion) {
    let plaintext = vec![0x42u8; BODY];
    let mut group = c.benchmark_group("olm");
    group.throughput(Throughput::Bytes(BODY as u64));
    let mut pair = OlmPair::new();
    let keys = pair.alice.olm.sender_keys(&pair.alice.identity);
    group.bench_function("encrypt 1 KiB", |b| {
        b.iter(|| pair.to_bob.encrypt(black_box(&plaintext), &keys).unwrap())
    });
    // A fresh pair: Bob's side never saw the messages above (Olm limits how far ahead a
    // message may be).
    let OlmPair {
        alice,
        mut bob,
        mut to_bob,
        mut from_alice,
    } = OlmPair::new();
    let keys = alice.olm.sender_keys(&alice.identity);
    let sender = alice.identity.address();
    group.bench_function("decrypt 1 KiB", |b| {
        b.iter_batched(
            || to_bob.encrypt(&plaintext, &keys).unwrap().unwrap(),
            |body| from_alice.decrypt(&mut bob.olm, &sender, &body).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn megolm(c: &mut Criterion) {
    let mut outbound = GroupOutbound::new();
    let mut inbound = GroupInbound::from_session_key(&outbound.session_key()).unwrap();
    let plaintext = vec![0x42u8; BODY];
    let mut group = c.benchmark_group("megolm");
    group.throughput(Throughput::Bytes(BODY as u64));
    group.bench_function("encrypt 1 KiB", |b| {
        b.iter(|| outbound.encrypt(black_box(&plaintext)))
    });
    group.bench_function("decrypt 1 KiB", |b| {
        b.iter_batched(
            || outbound.encrypt(&plaintext),
            |body| inbound.decrypt(&body).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, envelopes, olm, megolm);
criterion_main!(benches);
