//! Handing out key bundles without letting anyone drain them: one-time keys go out at a
//! bounded rate per user (the fallback key after that), claims from another relay must name
//! a requester homed there and are rate-limited per relay.

use std::sync::Arc;

use libp2p::PeerId;
use tidings_protocol::{Address, ErrorAnswer, ErrorCode, KeyBundle, UserId};

use super::{Directory, HomeCheck, LookupBudget};
use crate::{
    config::ClaimsConfig,
    ingest::{RateLimiter, storage_answer},
    metrics::{ClaimRefusal, Metrics},
    store::{ClaimOutcome, Store, StoreError},
};

/// Most users whose one-time key budget is tracked at once; when full of users still
/// refilling, a claim for a new one gets the fallback key.
const MAX_TRACKED_USERS: usize = 1 << 18;

/// Most other relays whose claim rate is tracked at once.
const MAX_TRACKED_RELAYS: usize = 1 << 14;

/// Tokens one one-time key costs: the user buckets refill one token a second, so a budget
/// of N keys an hour is a bucket of N * 3600 tokens.
const SECONDS_PER_HOUR: usize = 3600;

/// The claim limits of a relay.
struct ClaimLimits {
    /// One-time keys per requested user; `None`: the fallback key only.
    one_time_keys: Option<RateLimiter<UserId>>,
    /// Claims per other relay (one per user asked for).
    relays: RateLimiter<PeerId>,
}

impl ClaimLimits {
    fn new(config: &ClaimsConfig) -> Self {
        let per_hour = config.one_time_keys_per_user_per_hour;
        Self {
            one_time_keys: (per_hour > 0).then(|| {
                RateLimiter::new(
                    1,
                    per_hour.saturating_mul(SECONDS_PER_HOUR as u64),
                    MAX_TRACKED_USERS,
                )
            }),
            relays: RateLimiter::new(
                config.relay_claims_per_sec,
                config.relay_claims_burst,
                MAX_TRACKED_RELAYS,
            ),
        }
    }

    /// Whether a one-time key of `user` may go out now (and counts it).
    fn one_time_key_allowed(&self, user: UserId) -> bool {
        self.one_time_keys
            .as_ref()
            .is_some_and(|limiter| limiter.take(user, [SECONDS_PER_HOUR]) == 1)
    }
}

/// Hands out bundles of local users, to local sessions and to other relays. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Claims(Arc<ClaimsInner>);

struct ClaimsInner {
    limits: ClaimLimits,
    store: Store,
    metrics: Arc<Metrics>,
    directory: Directory,
    /// This relay's peer id, as home records name it.
    self_peer: String,
}

impl Claims {
    pub fn new(
        config: &ClaimsConfig,
        store: Store,
        metrics: Arc<Metrics>,
        directory: Directory,
    ) -> Self {
        let self_peer = directory.self_peer().to_string();
        Self(Arc::new(ClaimsInner {
            limits: ClaimLimits::new(config),
            store,
            metrics,
            directory,
            self_peer,
        }))
    }

    /// A bundle of device `address` of a local user: with a one-time key while the user's
    /// hourly budget lasts, with the device's fallback key after that.
    pub(crate) async fn hand_out(&self, address: Address) -> Result<ClaimOutcome, StoreError> {
        let user = address.user;
        if self.0.limits.one_time_key_allowed(user) {
            return self.0.store.claim_bundle(address).await;
        }
        self.0.metrics.one_time_key_withheld();
        let Some(user_record) = self.0.store.user(user).await? else {
            return Ok(ClaimOutcome::UnknownUser);
        };
        if !user_record.is_home(&self.0.self_peer) {
            return Ok(ClaimOutcome::UnknownUser);
        }
        let record = match self.0.store.device(address.device).await? {
            Some(record) if record.cert.user == user => record,
            _ => return Ok(ClaimOutcome::UnknownDevice),
        };
        Ok(match (record.identity, record.fallback) {
            (Some(identity), Some(prekey)) => ClaimOutcome::Bundle(Box::new(KeyBundle {
                cert: record.cert,
                identity,
                prekey,
            })),
            _ => ClaimOutcome::NoKeys,
        })
    }

    /// The answer to another relay's claim for device `address`.
    async fn answer(&self, address: Address) -> Result<KeyBundle, ErrorAnswer> {
        let user = address.user;
        match self.hand_out(address).await.map_err(storage_answer)? {
            ClaimOutcome::Bundle(bundle) => Ok(*bundle),
            ClaimOutcome::UnknownUser => Err(ErrorAnswer::new(
                ErrorCode::WrongRelay,
                format!("{user} is not homed at this relay"),
            )),
            ClaimOutcome::UnknownDevice => Err(unknown_device(address)),
            ClaimOutcome::NoKeys => Err(ErrorAnswer::new(
                ErrorCode::NoKeys,
                format!("{user} has not published keys yet"),
            )),
        }
    }

    /// Serves another relay's claim for `users` made for `requester`: users beyond the relay's
    /// claim rate are answered `rate_limited` (the whole request if none is left), the request
    /// is refused whole unless the requester is homed at `peer`, the others are answered in
    /// order. The rate is charged first, so requests naming made-up requesters (each costing a
    /// lookup) are bounded by it too.
    pub(crate) async fn serve(
        &self,
        peer: PeerId,
        requester: UserId,
        users: &[Address],
    ) -> Result<Vec<Result<KeyBundle, ErrorAnswer>>, ErrorAnswer> {
        let too_fast = || {
            ErrorAnswer::new(
                ErrorCode::RateLimited,
                "your relay claims keys too fast; retry later",
            )
        };
        let granted = self
            .0
            .limits
            .relays
            .take(peer, std::iter::repeat_n(1, users.len()));
        if granted < users.len() {
            tracing::info!(%peer, refused = users.len() - granted, "another relay claims keys too fast");
            for _ in granted..users.len() {
                self.0.metrics.claim_refused(ClaimRefusal::RateLimited);
            }
        }
        if granted == 0 && !users.is_empty() {
            return Err(too_fast());
        }
        match self
            .0
            .directory
            .is_home_of(requester, peer, &LookupBudget::per_request())
            .await
            .map_err(storage_answer)?
        {
            HomeCheck::Home => {}
            HomeCheck::NotHome => {
                self.0.metrics.claim_refused(ClaimRefusal::NotHome);
                return Err(ErrorAnswer::new(
                    ErrorCode::WrongRelay,
                    format!("{requester} is not homed at the asking relay"),
                ));
            }
            HomeCheck::Unknown => {
                self.0.metrics.claim_refused(ClaimRefusal::UnknownRequester);
                return Err(ErrorAnswer::new(
                    ErrorCode::Unavailable,
                    format!("no home record found for {requester} yet; retry later"),
                ));
            }
        }
        let mut answers = Vec::with_capacity(users.len());
        for user in &users[..granted] {
            answers.push(self.answer(*user).await);
        }
        answers.extend((granted..users.len()).map(|_| Err(too_fast())));
        Ok(answers)
    }
}

/// The refusal of a claim for a device its user has not registered here.
pub(crate) fn unknown_device(address: Address) -> ErrorAnswer {
    ErrorAnswer::new(
        ErrorCode::UnknownRecipient,
        format!(
            "{} has no device {} at this relay",
            address.user, address.device
        ),
    )
}
