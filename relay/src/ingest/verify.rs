//! Checking envelopes before they are stored: sizes, sender and kind, then signatures.

use std::{num::NonZeroUsize, sync::OnceLock};

use bytes::Bytes;
use tidings_protocol::{
    Address, Envelope, ErrorCode, Kind, RawEnvelope, Recipient,
    client::SendOutcome,
    envelope::{SenderKey, verify_batch_knowing},
    limits::MAX_ENVELOPE_BYTES,
};

use super::{Verified, reject};

/// Everything about an envelope that can be checked without its signature.
fn precheck(sender: Option<&Address>, raw: &RawEnvelope) -> Result<Envelope, SendOutcome> {
    if raw.len() > MAX_ENVELOPE_BYTES {
        return Err(reject(
            ErrorCode::EnvelopeTooLarge,
            format!("{} bytes exceeds {MAX_ENVELOPE_BYTES}", raw.len()),
        ));
    }
    let envelope = raw
        .decode_unverified()
        .map_err(|error| reject(ErrorCode::Malformed, error.to_string()))?;
    if let Some(sender) = sender
        && envelope.sender != *sender
    {
        return Err(reject(
            ErrorCode::SenderMismatch,
            "the sender is not the device on this stream",
        ));
    }
    match (envelope.kind, envelope.recipient) {
        (Kind::Typing, _) => Err(reject(
            ErrorCode::Malformed,
            "typing notices are never stored: send them with Ephemeral",
        )),
        (Kind::GroupControl, Recipient::Direct(_)) => Err(reject(
            ErrorCode::Malformed,
            "a group change must be addressed to its group",
        )),
        _ => Ok(envelope),
    }
}

/// Most envelopes verified on the async runtime itself (about 60 us each); a larger request
/// is verified on the blocking pool so it holds no runtime worker for milliseconds.
pub(crate) const VERIFY_INLINE_MAX: usize = 4;

/// Good envelopes with their positions in the request, and refusals by position.
pub(crate) type Checked = (Vec<(usize, Verified)>, Vec<Option<SendOutcome>>);

/// Checks and verifies envelopes as [`verify_now`] does: a request of at most
/// [`VERIFY_INLINE_MAX`] envelopes right here, a larger one on the blocking pool, split into
/// shares checked side by side (one per core, each at least [`MIN_SHARE`] envelopes): a burst
/// waits for its share of the signature checks rather than for all of them on one core.
pub(crate) async fn verify(
    sender: Option<Address>,
    known: Option<&SenderKey>,
    raws: Vec<RawEnvelope>,
) -> Checked {
    if raws.len() <= VERIFY_INLINE_MAX {
        return verify_now(sender.as_ref(), known, raws);
    }
    let shares = shares_for(raws.len());
    verify_in_shares(sender, known, raws, shares).await
}

/// Verifies `raws` on the blocking pool in `shares` jobs of about equal size, side by side;
/// the result as [`verify_now`] gives it for the whole request.
async fn verify_in_shares(
    sender: Option<Address>,
    known: Option<&SenderKey>,
    raws: Vec<RawEnvelope>,
    shares: usize,
) -> Checked {
    let count = raws.len();
    let per_share = count.div_ceil(shares.max(1)).max(1);
    let mut jobs = Vec::new();
    let (mut rest, mut first) = (raws, 0);
    while !rest.is_empty() {
        let tail = rest.split_off(per_share.min(rest.len()));
        let share = std::mem::replace(&mut rest, tail);
        let (len, known) = (share.len(), known.cloned());
        let job =
            tokio::task::spawn_blocking(move || verify_now(sender.as_ref(), known.as_ref(), share));
        jobs.push((first, len, job));
        first += len;
    }
    let mut good = Vec::with_capacity(count);
    let mut outcomes = Vec::with_capacity(count);
    for (first, len, job) in jobs {
        match job.await {
            Ok((share_good, share_outcomes)) => {
                good.extend(
                    share_good
                        .into_iter()
                        .map(|(index, verified)| (first + index, verified)),
                );
                outcomes.extend(share_outcomes);
            }
            Err(error) => {
                // The runtime is shutting down (or the check panicked): none of these is stored.
                tracing::warn!(%error, len, "verifying envelopes on the blocking pool failed");
                let busy = reject(
                    ErrorCode::Unavailable,
                    "the relay could not check this now; retry later",
                );
                outcomes.extend(std::iter::repeat_n(Some(busy), len));
            }
        }
    }
    (good, outcomes)
}

/// Fewest envelopes worth a blocking-pool job of their own: below it the hand-off between
/// threads costs more than the checks it takes off another core.
const MIN_SHARE: usize = 8;

/// How many shares a request of `count` envelopes is verified in: one per core at most.
fn shares_for(count: usize) -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores =
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
    (count / MIN_SHARE).clamp(1, cores)
}

/// Checks and verifies envelopes on this thread; `sender`, if given, must be every
/// envelope's sender, and `known` is its device's key if the caller holds it.
pub(crate) fn verify_now(
    sender: Option<&Address>,
    known: Option<&SenderKey>,
    raws: Vec<RawEnvelope>,
) -> Checked {
    let mut outcomes: Vec<Option<SendOutcome>> = vec![None; raws.len()];
    let mut checked = Vec::with_capacity(raws.len());
    for (index, raw) in raws.iter().enumerate() {
        match precheck(sender, raw) {
            Ok(envelope) => checked.push((index, envelope)),
            Err(outcome) => outcomes[index] = Some(outcome),
        }
    }
    let pairs: Vec<(&RawEnvelope, &Envelope)> = checked
        .iter()
        .map(|(index, envelope)| (&raws[*index], envelope))
        .collect();
    let verdicts = verify_batch_knowing(&pairs, known);
    drop(pairs);
    let mut raws: Vec<Option<RawEnvelope>> = raws.into_iter().map(Some).collect();
    let mut good = Vec::with_capacity(checked.len());
    for ((index, envelope), verdict) in checked.into_iter().zip(verdicts) {
        if verdict.is_err() {
            outcomes[index] = Some(reject(
                ErrorCode::BadSignature,
                "the signature does not verify with the sender device's key",
            ));
            continue;
        }
        if let Some(raw) = raws[index].take() {
            let bytes = Bytes::from(raw.into_bytes());
            good.push((index, Verified { envelope, bytes }));
        }
    }
    (good, outcomes)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use tidings_protocol::{DeviceId, EnvelopeId, UserId};

    use super::*;

    fn device() -> (SigningKey, Address) {
        let account = SigningKey::from_bytes(&[7; 32]);
        let key = SigningKey::from_bytes(&[8; 32]);
        let address = Address {
            user: UserId::from(&account.verifying_key()),
            device: DeviceId::from(&key.verifying_key()),
        };
        (key, address)
    }

    /// 40 envelopes of one device; 3, 17 and 33 carry a broken signature, 25 names another
    /// sender, 38 is a typing notice (never stored).
    fn request() -> (Vec<RawEnvelope>, Address) {
        let (key, me) = device();
        let (other_key, other) = {
            let key = SigningKey::from_bytes(&[9; 32]);
            let address = Address {
                user: me.user,
                device: DeviceId::from(&key.verifying_key()),
            };
            (key, address)
        };
        let raws = (0..40u8)
            .map(|i| {
                let sender = if i == 25 { other } else { me };
                let envelope = Envelope {
                    id: EnvelopeId::new(),
                    sender,
                    recipient: Recipient::Direct(me),
                    sent_at_ms: 1,
                    kind: if i == 38 { Kind::Typing } else { Kind::Message },
                    body: vec![i; 40],
                    blobs: Default::default(),
                };
                let raw = envelope.sign(if i == 25 { &other_key } else { &key });
                if matches!(i, 3 | 17 | 33) {
                    let mut bytes = raw.into_bytes();
                    if let Some(last) = bytes.last_mut() {
                        *last ^= 1;
                    }
                    return RawEnvelope::from_bytes(bytes);
                }
                raw
            })
            .collect();
        (raws, me)
    }

    fn summary(checked: &Checked) -> (Vec<usize>, Vec<Option<SendOutcome>>) {
        let good = checked.0.iter().map(|(index, _)| *index).collect();
        (good, checked.1.clone())
    }

    fn code(outcome: &Option<SendOutcome>) -> Option<ErrorCode> {
        match outcome {
            Some(SendOutcome::Rejected(answer)) => Some(answer.code),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_request_verified_in_shares_gets_the_verdicts_of_one_pass() {
        let (raws, me) = request();
        let whole = summary(&verify_now(Some(&me), None, raws.clone()));
        assert_eq!(whole.0.len(), 35);
        assert_eq!(code(&whole.1[3]), Some(ErrorCode::BadSignature));
        assert_eq!(code(&whole.1[25]), Some(ErrorCode::SenderMismatch));
        assert_eq!(code(&whole.1[38]), Some(ErrorCode::Malformed));
        for shares in [1, 2, 3, 7, 40, 64] {
            let split = verify_in_shares(Some(me), None, raws.clone(), shares).await;
            assert_eq!(summary(&split), whole, "{shares} shares");
            for (index, verified) in &split.0 {
                assert_eq!(
                    verified.bytes.as_ref(),
                    raws[*index].as_bytes(),
                    "{shares} shares"
                );
            }
        }
        assert_eq!(summary(&verify(Some(me), None, raws).await), whole);
    }

    #[test]
    fn small_requests_stay_in_one_share_and_large_ones_use_every_core() {
        assert_eq!(shares_for(MIN_SHARE - 1), 1);
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(shares_for(MIN_SHARE * 64), cores.min(64));
    }
}
