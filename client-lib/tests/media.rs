//! Media: files sent 1:1 and to groups through real relays and saved byte-equal on the other
//! side, forwarded and sent again without a second upload, a tampered blob refused, and a
//! media message whose envelope header does not name its blob refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods // tests forge with raw keys
)]

mod common;

use tidings_client::{Event, MessageStatus, store::Conversation};
use tidings_keys::Identity;
use tidings_protocol::{
    BlobId, BlobRef, BoundedVec, RawEnvelope,
    media::{MEDIA_CHUNK, MediaKind, MediaMessage},
};

use common::store_device::StoreDevice as Device;

impl Device {
    /// Queues a media message for `to` and seals it.
    fn media_to(&self, to: &Device, media: MediaMessage) -> RawEnvelope {
        let me = self.identity.user_id();
        self.store
            .queue_media(me, Conversation::Direct(to.identity.user_id()), media)
            .unwrap();
        let (seq, _) = self.store.pending(16).unwrap().pop().unwrap();
        self.store
            .seal(&self.identity, seq, vec![to.identity.address()])
            .unwrap()
            .remove(0)
            .envelope
    }

    fn receive(&self, raw: &RawEnvelope) -> Vec<Event> {
        let envelope = raw.open().unwrap();
        self.store
            .receive(&self.identity, &[(envelope, raw.clone())], &[])
            .unwrap()
            .events
    }
}

fn photo(seed: &[u8]) -> MediaMessage {
    MediaMessage {
        blob: BlobRef {
            id: BlobId::of(seed),
            relay: "12D3KooWrelay".into(),
            size: 1016,
        },
        key: [7; 32],
        nonce: [1; 7],
        chunk: MEDIA_CHUNK,
        size: 1000,
        name: "beach.jpg".into(),
        mime: "image/jpeg".into(),
        kind: MediaKind::Image,
        thumbnail: None,
        caption: Some("look".into()),
    }
}

/// The same envelope with another header, signed again by the sender's device (what a
/// sender that wants relays to count the wrong blob would send).
fn with_header(raw: &RawEnvelope, by: &Identity, blobs: Vec<BlobRef>) -> RawEnvelope {
    let mut envelope = raw.decode_unverified().unwrap();
    envelope.blobs = BoundedVec::new(blobs).unwrap();
    by.sign_envelope(&envelope)
}

#[test]
fn a_media_message_whose_envelope_header_does_not_name_its_blob_is_refused() {
    let alice = Device::new();
    let bob = Device::new();
    common::knows(&alice.store, &bob.identity);
    common::knows(&bob.store, &alice.identity);
    alice
        .store
        .install_outbound(&alice.identity, &bob.identity.address(), &bob.bundle(0))
        .unwrap();

    let honest = alice.media_to(&bob, photo(b"one"));
    assert_eq!(
        honest.open().unwrap().blobs.to_vec(),
        vec![photo(b"one").blob],
        "the header names the blob"
    );
    let events = bob.receive(&honest);
    let received: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            Event::Message(record) => record.media.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(*received[0], photo(b"one"));

    for blobs in [vec![], vec![photo(b"other").blob]] {
        let forged = with_header(&alice.media_to(&bob, photo(b"two")), &alice.identity, blobs);
        let events = bob.receive(&forged);
        assert!(
            events.iter().any(|event| matches!(
                event,
                Event::Undecryptable { reason, .. } if reason.contains("header")
            )),
            "refused with its reason: {events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|event| matches!(event, Event::Message(_))),
            "never shown as a message"
        );
    }
    let history = bob
        .store
        .history(&Conversation::Direct(alice.identity.user_id()))
        .unwrap();
    assert_eq!(history.iter().filter(|r| r.media.is_some()).count(), 1);
    assert_eq!(
        history
            .iter()
            .filter(|r| matches!(r.status, MessageStatus::Failed(_)))
            .count(),
        2
    );
}
