//! Held-back envelopes: from a device not on its account's held list, kept until it can be fetched.

use std::time::Duration;

use super::at_rest::WriteTxn;
use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use tidings_protocol::{Envelope, RawEnvelope, UserId, now_ms};

use super::{ClientStore, StoreError, decode, encode, tables::HELD};

/// Most envelopes held back per sender account; past it, more are failed as before lists
/// could be waited for.
pub const HELD_PER_USER: usize = 256;
/// Most envelopes held back in all (each at most 64 KiB on the wire, so 128 MiB at worst).
pub const HELD_TOTAL: usize = 2_048;
/// How long an envelope is held back at most; an older one is failed.
pub const HELD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// One held-back envelope as stored.
#[derive(Debug, Serialize, Deserialize)]
struct HeldEnvelope {
    /// When it was held back here (ms since the epoch).
    held_at_ms: u64,
    /// The envelope as it arrived (verified then; verified again when settled).
    envelope: RawEnvelope,
}

/// The [`HELD`] key of `user`'s `arrival`-th held envelope (big-endian: arrival order).
fn held_key(user: &UserId, arrival: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(user.as_bytes());
    key[32..].copy_from_slice(&arrival.to_be_bytes());
    key
}

fn key_user(key: &[u8; 40]) -> UserId {
    let mut user = [0u8; 32];
    user.copy_from_slice(&key[..32]);
    UserId::from_bytes(user)
}

fn key_arrival(key: &[u8; 40]) -> u64 {
    let mut arrival = [0u8; 8];
    arrival.copy_from_slice(&key[32..]);
    u64::from_be_bytes(arrival)
}

/// Holds back `raw` from its sender's account, or answers why not (a bound is reached).
pub(super) fn hold(
    txn: &WriteTxn<'_>,
    envelope: &Envelope,
    raw: &RawEnvelope,
) -> Result<Result<(), String>, StoreError> {
    let mut table = txn.open_table(HELD)?;
    if table.len()? >= HELD_TOTAL as u64 {
        return Ok(Err(format!(
            "{HELD_TOTAL} envelopes already wait for their senders' device lists"
        )));
    }
    let user = envelope.sender.user;
    let (first, last) = (held_key(&user, 0), held_key(&user, u64::MAX));
    if table.range::<&[u8; 40]>(&first..=&last)?.count() >= HELD_PER_USER {
        return Ok(Err(format!(
            "{HELD_PER_USER} envelopes of this account already wait for its device list"
        )));
    }
    let arrival = table
        .range::<&[u8; 40]>(&first..=&last)?
        .next_back()
        .transpose()?
        .map_or(0, |(key, _)| key_arrival(key.value()).saturating_add(1));
    let held = HeldEnvelope {
        held_at_ms: now_ms(),
        envelope: raw.clone(),
    };
    table.insert(&held_key(&user, arrival), encode(&held).as_slice())?;
    Ok(Ok(()))
}

/// A held envelope taken out to settle.
pub(super) struct Taken {
    /// Held longer than [`HELD_MAX_AGE`].
    pub(super) expired: bool,
    /// The envelope as it arrived.
    pub(super) envelope: RawEnvelope,
}

/// Takes out every held envelope of `fresh` and every expired one of anyone, in key order
/// (each user's in arrival order). A row that does not decode is dropped and logged.
pub(super) fn take(
    txn: &WriteTxn<'_>,
    fresh: &[UserId],
    now: u64,
) -> Result<Vec<Taken>, StoreError> {
    let max_age = u64::try_from(HELD_MAX_AGE.as_millis()).unwrap_or(u64::MAX);
    let mut taken = Vec::new();
    txn.open_table(HELD)?.retain(|key, value| {
        match decode::<HeldEnvelope>("held_back", value) {
            Ok(held) => {
                let expired = now.saturating_sub(held.held_at_ms) > max_age;
                if !expired && !fresh.contains(&key_user(key)) {
                    return true;
                }
                taken.push(Taken {
                    expired,
                    envelope: held.envelope,
                });
            }
            Err(error) => {
                tracing::warn!(%error, "dropping a held-back envelope that does not decode")
            }
        }
        false
    })?;
    Ok(taken)
}

/// Users with held envelopes and how many each, in user order.
pub(super) fn held_counts(
    table: &impl ReadableTable<&'static [u8; 40], &'static [u8]>,
) -> HeldCounts {
    let mut counts: Vec<(UserId, usize)> = Vec::new();
    for row in table.iter()? {
        let (key, _) = row?;
        let user = key_user(key.value());
        match counts.last_mut() {
            Some((last, count)) if *last == user => *count += 1,
            _ => counts.push((user, 1)),
        }
    }
    Ok(counts)
}

pub(super) type HeldCounts = Result<Vec<(UserId, usize)>, StoreError>;

impl ClientStore {
    /// Users with envelopes held back (from a device their held list does not name, while
    /// their list cannot be fetched), with how many each.
    pub fn held_back(&self) -> HeldCounts {
        self.read(|txn| held_counts(&txn.open_table(HELD)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use tidings_keys::Identity;
    use tidings_protocol::{Address, DeviceId, EnvelopeId, Kind, Recipient};

    use super::*;
    use crate::events::Event;

    fn envelope_from(sender: Address, to: Address) -> Envelope {
        Envelope {
            id: EnvelopeId::random(),
            sender,
            recipient: Recipient::Direct(to),
            sent_at_ms: now_ms(),
            kind: Kind::Message,
            body: b"never opened".to_vec(),
            blobs: Default::default(),
        }
    }

    /// Past [`HELD_TOTAL`] nothing more is held, from anyone.
    #[test]
    fn past_the_bound_in_all_nothing_more_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
        let me = Identity::generate().address();
        let raw = RawEnvelope::from_bytes(b"stands in".to_vec());
        let per_user = HELD_PER_USER;
        let users = HELD_TOTAL / per_user;
        store
            .write(|txn| {
                for index in 0..users {
                    let sender = Address {
                        user: UserId::from_bytes([index as u8; 32]),
                        device: DeviceId::from_bytes([index as u8; 32]),
                    };
                    for _ in 0..per_user {
                        hold(txn, &envelope_from(sender, me), &raw)?.unwrap();
                    }
                }
                let newcomer = Address {
                    user: UserId::from_bytes([0xee; 32]),
                    device: DeviceId::from_bytes([0xee; 32]),
                };
                let refused = hold(txn, &envelope_from(newcomer, me), &raw)?.unwrap_err();
                assert!(
                    refused.contains(&format!("{HELD_TOTAL} envelopes")),
                    "{refused}"
                );
                Ok(())
            })
            .unwrap();
        let counts = store.held_back().unwrap();
        assert_eq!(counts.len(), users);
        assert!(counts.iter().all(|(_, count)| *count == per_user));
    }

    /// An envelope held longer than [`HELD_MAX_AGE`] is failed at the next settling, with the
    /// reason; a younger one stays.
    #[test]
    fn an_envelope_held_too_long_is_failed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = ClientStore::open(dir.path(), crate::store::tests::test_store_key()).unwrap();
        let me = Identity::generate();
        let sender = Identity::generate();
        let old = envelope_from(sender.address(), me.address());
        let young = envelope_from(sender.address(), me.address());
        let max_age = u64::try_from(HELD_MAX_AGE.as_millis()).unwrap();
        store
            .write(|txn| {
                let mut table = txn.open_table(HELD)?;
                for (arrival, (envelope, age)) in [(&old, max_age + 60_000), (&young, 60_000)]
                    .into_iter()
                    .enumerate()
                {
                    let held = HeldEnvelope {
                        held_at_ms: now_ms() - age,
                        envelope: sender.sign_envelope(envelope),
                    };
                    table.insert(
                        &held_key(&sender.user_id(), arrival as u64),
                        encode(&held).as_slice(),
                    )?;
                }
                Ok(())
            })
            .unwrap();

        let settled = store.settle_held(&me, &[]).unwrap();
        let [Event::Undecryptable { id, reason, .. }] = &settled.events[..] else {
            panic!("{:?}", settled.events);
        };
        assert_eq!(*id, old.id);
        assert!(
            reason.contains("could not be fetched for 7 days"),
            "{reason}"
        );
        assert_eq!(settled.held_back, [sender.user_id()]);
        assert_eq!(store.held_back().unwrap(), [(sender.user_id(), 1)]);
    }
}
