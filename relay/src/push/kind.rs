//! Whether a mailbox entry is a message (worth waking a device for), read from the envelope
//! header in place: no allocation, no copy of the body, on the store writer's thread.

use tidings_protocol::envelope::ENVELOPE_MAGIC;

/// Deepest CBOR nesting walked before giving up (an envelope header nests three deep).
const MAX_DEPTH: usize = 8;

/// Most top-level fields read (an envelope has seven).
const MAX_FIELDS: u64 = 16;

/// True if `bytes` is an envelope of kind message (`"k": "m"`): chat, group and media
/// messages. Receipts, key shares, group control, relay notices (bounces) and anything
/// that does not parse are false.
pub fn is_message(bytes: &[u8]) -> bool {
    let Some(cbor) = bytes.strip_prefix(ENVELOPE_MAGIC.as_slice()) else {
        return false;
    };
    message_kind(cbor).unwrap_or(false)
}

fn message_kind(cbor: &[u8]) -> Option<bool> {
    let mut reader = Reader { bytes: cbor, at: 0 };
    let (major, fields) = reader.head()?;
    if major != 5 || fields > MAX_FIELDS {
        return None;
    }
    for _ in 0..fields {
        let key = reader.text()?;
        if key == b"k" {
            return Some(reader.text()? == b"m");
        }
        reader.skip(0)?;
    }
    Some(false)
}

/// A cursor over CBOR bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// A data item's major type and argument (definite lengths only).
    fn head(&mut self) -> Option<(u8, u64)> {
        let first = *self.take(1)?.first()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let argument = match info {
            0..=23 => u64::from(info),
            24 => u64::from(*self.take(1)?.first()?),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?)),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().ok()?)),
            27 => u64::from_be_bytes(self.take(8)?.try_into().ok()?),
            _ => return None,
        };
        Some((major, argument))
    }

    fn text(&mut self) -> Option<&'a [u8]> {
        match self.head()? {
            (3, len) => self.take(usize::try_from(len).ok()?),
            _ => None,
        }
    }

    /// Skips one data item.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (major, argument) = self.head()?;
        match major {
            0 | 1 | 7 => {}
            2 | 3 => {
                self.take(usize::try_from(argument).ok()?)?;
            }
            4 | 5 => {
                let items = if major == 5 {
                    argument.checked_mul(2)?
                } else {
                    argument
                };
                // Every item takes at least a byte: a count beyond what is left is a lie.
                if items > (self.bytes.len() - self.at) as u64 {
                    return None;
                }
                for _ in 0..items {
                    self.skip(depth + 1)?;
                }
            }
            6 => self.skip(depth + 1)?,
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use tidings_protocol::{
        Address, DeviceId, EnvelopeId, UserId,
        envelope::{Envelope, Kind, Recipient},
    };

    use super::is_message;

    fn signed(kind: Kind, body: Vec<u8>) -> Vec<u8> {
        let key = SigningKey::from_bytes(&[7; 32]);
        let sender = Address {
            user: UserId::from_bytes([1; 32]),
            device: DeviceId::from_bytes(key.verifying_key().to_bytes()),
        };
        let to = Address {
            user: UserId::from_bytes([2; 32]),
            device: DeviceId::from_bytes([3; 32]),
        };
        Envelope {
            id: EnvelopeId::from_bytes([0x61; 16]),
            sender,
            recipient: Recipient::Direct(to),
            sent_at_ms: 1_700_000_000_000,
            kind,
            body,
            blobs: Default::default(),
        }
        .sign(&key)
        .into_bytes()
    }

    #[test]
    fn only_messages_count_whatever_their_body_holds() {
        // A body that itself looks like `"k": "m"` must not fool the reader.
        let tricky = vec![0x61, b'k', 0x61, b'm'];
        assert!(is_message(&signed(Kind::Message, vec![1; 70_000])));
        assert!(!is_message(&signed(Kind::Receipt, tricky.clone())));
        assert!(!is_message(&signed(Kind::KeyShare, tricky.clone())));
        assert!(!is_message(&signed(Kind::GroupControl, tricky)));
        assert!(!is_message(b"TDR1 a blob reference"));
        assert!(!is_message(b""));
        let message = signed(Kind::Message, vec![1; 10]);
        for len in 0..message.len() - 64 {
            // Cut anywhere before the kind: false or true, never a panic.
            let _ = is_message(&message[..len]);
        }
    }
}
