//! Envelopes signed and framed before the timed part: each a whole `Send` request of one
//! envelope, laid end to end so a window of them goes out as one write; and the clock that
//! notes when each went out.

use std::{
    ops::Range,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use anyhow::ensure;
use tidings_keys::Identity;
use tidings_protocol::{
    Address, BoundedVec, Envelope, EnvelopeId, Kind, Recipient,
    client::{ClientFrame, Request},
    framing, now_ms,
};

/// Request id of a sender's frame 0; frame `k` carries `FIRST_SEND_ID + k` (ids below are
/// the setup requests').
pub const FIRST_SEND_ID: u64 = 1_000;

/// A sender's frames, in order: frame 0 is the warm-up, the rest are timed.
pub struct Prebuilt {
    bytes: Vec<u8>,
    /// Where each frame ends in `bytes`.
    ends: Vec<usize>,
}

impl Prebuilt {
    /// Signs and frames `count` envelopes (frame 0 included) from `sender` (the sender's
    /// index `index` among all) to `recipient`, each with a body of `body_bytes` bytes.
    pub fn build(
        sender: &Identity,
        index: u32,
        recipient: Address,
        count: usize,
        body_bytes: usize,
    ) -> anyhow::Result<Self> {
        ensure!(count <= u32::MAX as usize, "too many frames for one sender");
        let address = sender.address();
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(count);
        let sent_at_ms = now_ms();
        for k in 0..count {
            let envelope = Envelope {
                id: envelope_id(index, k as u32),
                sender: address,
                recipient: Recipient::Direct(recipient),
                sent_at_ms,
                kind: Kind::Message,
                // Looks like ciphertext to the relay, which never reads it.
                body: vec![(k % 251) as u8; body_bytes],
                blobs: BoundedVec::default(),
            };
            let raw = sender.sign_envelope(&envelope);
            let frame = ClientFrame::Request {
                id: FIRST_SEND_ID + k as u64,
                body: Request::Send {
                    envelopes: BoundedVec::new(vec![raw])?,
                },
            };
            framing::encode_frame(&frame, &mut bytes);
            ends.push(bytes.len());
        }
        Ok(Self { bytes, ends })
    }

    /// How many frames there are (the warm-up included).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of frames `range`, end to end.
    pub fn slice(&self, range: Range<usize>) -> &[u8] {
        let start = match range.start {
            0 => 0,
            k => self.ends[k - 1],
        };
        let end = match range.end {
            0 => 0,
            k => self.ends[k - 1],
        };
        &self.bytes[start..end]
    }
}

/// An envelope id as clients make them ([`EnvelopeId::new`]: the time first, so one
/// sender's ids sort by when they were made), its last 8 bytes replaced by the sender's index
/// and the frame number, so a receiver knows what it got.
pub fn envelope_id(sender: u32, frame: u32) -> EnvelopeId {
    let mut bytes = *EnvelopeId::new().as_bytes();
    bytes[8..12].copy_from_slice(&sender.to_be_bytes());
    bytes[12..].copy_from_slice(&frame.to_be_bytes());
    EnvelopeId::from_bytes(bytes)
}

/// The sender index and frame number an [`envelope_id`] carries.
pub fn parse_id(id: &EnvelopeId) -> (u32, u32) {
    let bytes = id.as_bytes();
    let sender = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let frame = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    (sender, frame)
}

/// When each frame of every sender was written (nanoseconds after the clock's start,
/// plus one; 0 for not yet).
pub struct SendClock {
    start: Instant,
    /// By sender, then frame.
    at: Vec<Vec<AtomicU64>>,
}

impl SendClock {
    /// A clock for senders with `frames[i]` frames each.
    pub fn new(frames: impl IntoIterator<Item = usize>) -> Self {
        Self {
            start: Instant::now(),
            at: frames
                .into_iter()
                .map(|count| (0..count).map(|_| AtomicU64::new(0)).collect())
                .collect(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64 + 1
    }

    /// Notes that sender `sender` wrote frames `range` now.
    pub fn written(&self, sender: usize, range: Range<usize>) {
        let now = self.now();
        if let Some(frames) = self.at.get(sender) {
            for slot in frames.get(range).unwrap_or_default() {
                slot.store(now, Ordering::Relaxed);
            }
        }
    }

    /// Milliseconds since sender `sender` wrote frame `frame`, if it did.
    pub fn since(&self, sender: usize, frame: usize) -> Option<f64> {
        let at = self.at.get(sender)?.get(frame)?.load(Ordering::Relaxed);
        (at > 0).then(|| self.now().saturating_sub(at) as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_sender_and_frame_and_frames_lie_end_to_end() {
        let id = envelope_id(7, 123_456);
        assert_eq!(parse_id(&id), (7, 123_456));
        let now = now_ms();
        let made = envelope_id(7, 1).time_ms();
        assert!(
            (now..now + 60_000).contains(&made),
            "made now, as clients make ids"
        );

        let sender = Identity::generate();
        let recipient = Identity::generate().address();
        let frames = Prebuilt::build(&sender, 3, recipient, 4, 16).unwrap();
        assert_eq!(frames.len(), 4);
        let all = frames.slice(0..4);
        let mut reader = all;
        let mut buf = Vec::new();
        for k in 0..4u64 {
            assert!(
                futures::executor::block_on(framing::read_frame(&mut reader, &mut buf)).unwrap()
            );
            let ClientFrame::Request {
                id,
                body: Request::Send { envelopes },
            } = ClientFrame::decode(&buf).unwrap()
            else {
                panic!("not a send request");
            };
            assert_eq!(id, FIRST_SEND_ID + k);
            let envelope = envelopes.into_vec().remove(0).open().unwrap();
            assert_eq!(parse_id(&envelope.id), (3, k as u32));
            assert_eq!(envelope.recipient, Recipient::Direct(recipient));
        }
        assert_eq!(
            frames.slice(1..3).len(),
            frames.slice(0..3).len() - frames.slice(0..1).len()
        );
    }
}
