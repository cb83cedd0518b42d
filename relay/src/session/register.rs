//! `Register`: bind the connected device to an account, under the relay's policy and the
//! account's device list.

use tidings_protocol::{
    DeviceId, DeviceListError, ErrorAnswer, ErrorCode, SignedDeviceList, UserId,
    client::{Register, Response},
};

use libp2p::PeerId;

use super::{Answer, context::ClientContext};
use crate::ingest::storage_answer;
use crate::{
    config::RegistrationPolicy,
    metrics::{DeviceListVerdict, Refusal},
    store::RegisterOutcome,
};

/// Returns the answer and, on success, the user the session now belongs to.
pub(super) async fn handle(
    cx: &ClientContext,
    peer: PeerId,
    device: DeviceId,
    current: Option<UserId>,
    register: Register,
) -> (Answer, Option<UserId>) {
    let Register { cert, invite, list } = register;
    if cert.device != device {
        return refuse(
            ErrorCode::BadCertificate,
            "the certificate names another device",
        );
    }
    if cert.verify().is_err() {
        return refuse(
            ErrorCode::BadCertificate,
            "the account's signature on the certificate does not verify",
        );
    }
    let user = cert.user;
    let list = match list.map(|list| check_list(&list, user, device).map(|()| *list)) {
        Some(Err((verdict, answer))) => {
            cx.metrics.device_lists.count(verdict);
            return (Err(answer), None);
        }
        Some(Ok(list)) => Some(list),
        None => None,
    };
    if current == Some(user) && list.is_none() {
        let one_time_keys = cx.store.one_time_key_count(device).await.unwrap_or(0);
        return (
            Ok(Response::Registered {
                new: false,
                one_time_keys,
                relay_addrs: cx.relay_addrs(),
            }),
            Some(user),
        );
    }
    if let Err(answer) = super::not_suspended(cx, user).await {
        return (Err(answer), None);
    }
    if let Err(answer) = cx.disk.admit() {
        return (Err(answer), None);
    }
    // A device registered before comes back freely, as does another device of an account
    // registered here (the device list bounds those); a new account costs its source a
    // token and goes through the registration policy.
    let known = matches!(cx.store.device_user(device).await, Ok(Some(owner)) if owner == user);
    let account_here = match cx.store.user(user).await {
        Ok(record) => record.is_some(),
        Err(error) => return (Err(storage_answer(error)), None),
    };
    if !known
        && !account_here
        && let Err(answer) = limit_source(cx, peer)
    {
        return (Err(answer), None);
    }
    let invite = if account_here {
        None
    } else {
        match admit(cx, invite).await {
            Ok(invite) => invite,
            Err(answer) => return (Err(answer), None),
        }
    };
    let max_accounts = match (cx.registration.policy, cx.registration.config.max_accounts) {
        (RegistrationPolicy::Open, max) if max > 0 => Some(max),
        _ => None,
    };
    let with_list = list.is_some();
    let outcome = cx.store.register_device(cert, list, max_accounts).await;
    let answer = match outcome {
        Ok((RegisterOutcome::Registered { new, one_time_keys }, revoked)) => {
            tracing::info!(%user, %device, new, with_list, "device registered");
            if with_list {
                cx.metrics.device_lists.count(DeviceListVerdict::Stored);
            }
            super::devices::end_revoked(cx, &revoked);
            let relay_addrs = cx.relay_addrs();
            return (
                Ok(Response::Registered {
                    new,
                    one_time_keys,
                    relay_addrs,
                }),
                Some(user),
            );
        }
        Ok((RegisterOutcome::DeviceLimit { max }, _)) => {
            cx.metrics.device_lists.count(DeviceListVerdict::OverLimit);
            ErrorAnswer::new(
                ErrorCode::DeviceLimit,
                format!("this relay keeps at most {max} devices per account"),
            )
        }
        Ok((RegisterOutcome::DeviceTaken, _)) => ErrorAnswer::new(
            ErrorCode::BadCertificate,
            "this device is registered under another account",
        ),
        Ok((RegisterOutcome::Revoked, _)) => ErrorAnswer::new(
            ErrorCode::DeviceRevoked,
            "this device is not on its account's device list: link it again from a device \
             of the account (tidings device add), or restore the account on it \
             (tidings init --import)",
        ),
        Ok((RegisterOutcome::StaleList { held }, _)) => {
            cx.metrics.device_lists.count(DeviceListVerdict::Stale);
            ErrorAnswer::new(
                ErrorCode::StaleDeviceList,
                format!("the device list is not newer than the held version {held}"),
            )
        }
        Ok((RegisterOutcome::ListRefused(error), _)) => {
            cx.metrics.device_lists.count(DeviceListVerdict::Stale);
            ErrorAnswer::new(ErrorCode::StaleDeviceList, error.to_string())
        }
        Ok((RegisterOutcome::AccountLimit, _)) => {
            cx.metrics.limits.refused(Refusal::AccountCap);
            ErrorAnswer::new(
                ErrorCode::RegistrationClosed,
                "this relay holds as many accounts as it takes",
            )
        }
        Err(error) => storage_answer(error),
    };
    if let Some(code) = invite {
        refund(cx, code).await;
    }
    (Err(answer), None)
}

/// Checks a device list sent with a registration: signed by the account registering, and
/// naming the device; a refusal comes with the verdict it counts as.
fn check_list(
    list: &SignedDeviceList,
    user: UserId,
    device: DeviceId,
) -> Result<(), (DeviceListVerdict, ErrorAnswer)> {
    if list.list.user != user {
        return Err((
            DeviceListVerdict::WrongUser,
            ErrorAnswer::new(
                ErrorCode::SenderMismatch,
                "the device list is for another account",
            ),
        ));
    }
    list.verify().map_err(|error| {
        let code = match error {
            DeviceListError::Forged => ErrorCode::BadSignature,
            _ => ErrorCode::Malformed,
        };
        (
            DeviceListVerdict::Forged,
            ErrorAnswer::new(code, error.to_string()),
        )
    })?;
    if !list.contains(&device) {
        return Err((
            DeviceListVerdict::MissingSelf,
            ErrorAnswer::new(
                ErrorCode::Malformed,
                "the device list does not name the registering device",
            ),
        ));
    }
    Ok(())
}

/// Takes a registration token from the source the peer connects from.
fn limit_source(cx: &ClientContext, peer: PeerId) -> Result<(), ErrorAnswer> {
    let source = cx.registration.sources.source(&peer);
    if source.is_loopback() && !cx.registration.config.limit_loopback {
        return Ok(());
    }
    if cx.registration.rate.take(source, [1]) == 1 {
        return Ok(());
    }
    tracing::info!(?source, "registrations from one source over their rate");
    cx.metrics.limits.refused(Refusal::RegistrationRate);
    Err(ErrorAnswer::new(
        ErrorCode::RateLimited,
        "too many new accounts from your network; retry later",
    ))
}

fn refuse(code: ErrorCode, detail: &str) -> (Answer, Option<UserId>) {
    (Err(ErrorAnswer::new(code, detail)), None)
}

/// Applies the registration policy; returns the invite code whose use was taken, if any.
async fn admit(cx: &ClientContext, invite: Option<String>) -> Result<Option<String>, ErrorAnswer> {
    match cx.registration.policy {
        RegistrationPolicy::Open => Ok(None),
        RegistrationPolicy::Closed => Err(ErrorAnswer::new(
            ErrorCode::RegistrationClosed,
            "this relay does not take new registrations",
        )),
        RegistrationPolicy::Invite => {
            let Some(code) = invite else {
                return Err(ErrorAnswer::new(
                    ErrorCode::InviteRequired,
                    "this relay needs an invite code (--invite CODE)",
                ));
            };
            let invites = cx.registration.invites.clone();
            let taken = code.clone();
            let verdict = tokio::task::spawn_blocking(move || invites.consume(&taken)).await;
            match verdict {
                Ok(Ok(Ok(()))) => Ok(Some(code)),
                Ok(Ok(Err(rejection))) => Err(ErrorAnswer::new(
                    ErrorCode::InvalidInvite,
                    rejection.to_string(),
                )),
                Ok(Err(error)) => Err(storage_answer(error)),
                Err(_) => Err(ErrorAnswer::new(
                    ErrorCode::Unavailable,
                    "relay is shutting down",
                )),
            }
        }
    }
}

async fn refund(cx: &ClientContext, code: String) {
    let invites = cx.registration.invites.clone();
    let refunded = tokio::task::spawn_blocking(move || invites.refund(&code)).await;
    if !matches!(refunded, Ok(Ok(()))) {
        tracing::warn!("could not give back an invite use after a failed registration");
    }
}
